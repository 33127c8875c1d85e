"""Writes the HCCL rank table of this Ascend server for scripts/run_distributed_pretrain_ascend.sh, as the model
zoo's hccl_tools.py does: each device's NIC address from /etc/hccn.conf (address_N=IP lines), ranks in device order.

    python scripts/hccl_tools.py --device_num "[0,8)"            # -> hccl_8p_01234567_SERVER_IP.json
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import sys
from pathlib import Path

HCCN_ADDRESS = re.compile(r"^address_(\d+)=(\S+)$")


def device_range(text: str) -> list[int]:
    """'[0,8)' -> 0..7, as the zoo's --device_num takes it."""
    match = re.fullmatch(r"\[(\d+),(\d+)\)", text.replace(" ", ""))
    if not match or int(match[1]) >= int(match[2]):
        raise ValueError(f"--device_num '{text}' is not a range like '[0,8)'")
    return list(range(int(match[1]), int(match[2])))


def device_addresses(hccn_conf: Path) -> dict[int, str]:
    if not hccn_conf.is_file():
        raise FileNotFoundError(f"{hccn_conf} does not exist: it lists each device's NIC address (address_N=IP); "
                                f"configure the NICs with hccn_tool first, or pass --hccn_conf")
    addresses = {}
    for line in hccn_conf.read_text().splitlines():
        match = HCCN_ADDRESS.match(line.strip())
        if match:
            addresses[int(match[1])] = match[2]
    return addresses


def rank_table(devices: list[int], addresses: dict[int, str], server_ip: str, hccn_conf: Path) -> dict:
    missing = [d for d in devices if d not in addresses]
    if missing:
        raise ValueError(f"{hccn_conf} has no address_{missing[0]}= line for device {missing[0]}: configure that "
                         f"device's NIC or leave it out of --device_num")
    return {"version": "1.0", "server_count": "1",
            "server_list": [{"server_id": server_ip, "host_nic_ip": "reserve",
                             "device": [{"device_id": str(d), "device_ip": addresses[d], "rank_id": str(rank)}
                                        for rank, d in enumerate(devices)]}],
            "status": "completed"}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device_num", default="[0,8)", help="devices to use, a range like '[0,8)'")
    parser.add_argument("--server_ip", default="", help="this server's IP (default: the host's address)")
    parser.add_argument("--hccn_conf", default="/etc/hccn.conf")
    parser.add_argument("--output_dir", default=".")
    args = parser.parse_args(argv)
    try:
        devices = device_range(args.device_num)
        server_ip = args.server_ip or socket.gethostbyname(socket.gethostname())
        table = rank_table(devices, device_addresses(Path(args.hccn_conf)), server_ip, Path(args.hccn_conf))
    except (OSError, ValueError) as error:
        sys.exit(f"hccl_tools.py: {error}")
    path = Path(args.output_dir) / f"hccl_{len(devices)}p_{''.join(map(str, devices))}_{server_ip}.json"
    path.write_text(json.dumps(table, indent=4) + "\n")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
