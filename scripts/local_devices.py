"""Which devices of an HCCL rank table this server runs, for scripts/run_distributed_pretrain_ascend.sh.

    python scripts/local_devices.py RANK_TABLE_FILE [--server_id IP] [--cores N]

Prints `RANK_SIZE n` (every device of every server), then one line per device of this server:
`DEVICE_ID RANK_ID FIRST_CORE-LAST_CORE`, the rank the table gives it and an equal share of this server's CPU
cores (the model zoo's get_distribute_pretrain_cmd.py binds each rank's process to such a range with taskset).
This server is --server_id (default: the SERVER_ID environment variable), else the table's only server, else
the server whose server_id (or host_ip) is an address of this host.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys


def is_local_address(address: str) -> bool:
    """Whether address belongs to this host: a socket can be bound to it only if so."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False


def read_table(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            servers = json.load(handle)["server_list"]
        if not servers or not all("device_id" in device for server in servers for device in server["device"]):
            raise KeyError("device_id")
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"RANK_TABLE_FILE {path} is not an HCCL rank table (server_list[].device[].device_id): "
                         f"write one with scripts/hccl_tools.py") from None
    return servers


def this_server(servers: list[dict], server_id: str, path: str) -> dict:
    ids = [str(server.get("server_id", "")) for server in servers]
    if server_id:
        if server_id not in ids:
            raise ValueError(f"server_id {server_id} is not in RANK_TABLE_FILE {path} (it lists {', '.join(ids)}): "
                             f"pass one of those as SERVER_ID")
        return servers[ids.index(server_id)]
    if len(servers) == 1:
        return servers[0]
    local = [server for server in servers
             if any(is_local_address(str(server.get(key, ""))) for key in ("server_id", "host_ip") if server.get(key))]
    if len(local) != 1:
        raise ValueError(f"{'none' if not local else 'more than one'} of the servers of RANK_TABLE_FILE {path} "
                         f"({', '.join(ids)}) is this host: set SERVER_ID to this server's server_id")
    return local[0]


def plan(servers: list[dict], server: dict, cores: int) -> list[tuple[str, int, str]]:
    """(device_id, rank_id, core range) of each device of server; ranks from the table, else in table order."""
    ranks, order = {}, 0
    for entry in servers:
        for device in entry["device"]:
            ranks[id(device)] = int(device.get("rank_id", order))
            order += 1
    devices = server["device"]
    share = max(cores // len(devices), 1)
    return [(str(device["device_id"]), ranks[id(device)],
             f"{(index * share) % cores}-{(index * share) % cores + share - 1}")
            for index, device in enumerate(devices)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rank_table")
    parser.add_argument("--server_id", default=os.environ.get("SERVER_ID", ""))
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores to share among devices")
    args = parser.parse_args(argv)
    try:
        servers = read_table(args.rank_table)
        lines = plan(servers, this_server(servers, args.server_id, args.rank_table), args.cores)
    except ValueError as error:
        sys.exit(f"local_devices.py: {error}")
    print(f"RANK_SIZE {sum(len(server['device']) for server in servers)}")
    for device_id, rank_id, cores in lines:
        print(f"{device_id} {rank_id} {cores}")


if __name__ == "__main__":
    main()
