"""The rank table generator feeds the Ascend launcher: its output is what the launcher parses; a table of several
servers starts each server's own devices; the GPU launcher takes msrun's multi-node settings."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

HCCN_CONF = "".join(f"address_{d}=192.98.{d % 4}.{10 + d}\nnetmask_{d}=255.255.255.0\n" for d in range(8))


def test_rank_table_lists_the_devices_with_their_nic_addresses_in_rank_order(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("hccl_tools", ROOT / "scripts" / "hccl_tools.py")
    hccl_tools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hccl_tools)
    (tmp_path / "hccn.conf").write_text(HCCN_CONF)
    path = hccl_tools.main(["--device_num", "[4,8)", "--server_ip", "10.0.0.7", "--hccn_conf",
                            str(tmp_path / "hccn.conf"), "--output_dir", str(tmp_path)])
    assert path.name == "hccl_4p_4567_10.0.0.7.json"
    table = json.loads(path.read_text())
    assert table["server_count"] == "1" and table["status"] == "completed"
    assert table["server_list"][0]["server_id"] == "10.0.0.7"
    assert table["server_list"][0]["device"] == [
        {"device_id": "4", "device_ip": "192.98.0.14", "rank_id": "0"},
        {"device_id": "5", "device_ip": "192.98.1.15", "rank_id": "1"},
        {"device_id": "6", "device_ip": "192.98.2.16", "rank_id": "2"},
        {"device_id": "7", "device_ip": "192.98.3.17", "rank_id": "3"}]

    # The launcher refuses a missing data directory before it reads the table, and a file that is not a table.
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_distributed_pretrain_ascend.sh"),
                             str(tmp_path / "records"), str(path)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "DATA_DIR" in result.stderr and "does not exist" in result.stderr
    (tmp_path / "records").mkdir()
    (tmp_path / "bad.json").write_text("{}")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_distributed_pretrain_ascend.sh"),
                             str(tmp_path / "records"), str(tmp_path / "bad.json")], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 1 and "is not an HCCL rank table" in result.stderr


@pytest.mark.parametrize("flags, message", [
    (["--device_num", "0-8"], "--device_num '0-8' is not a range like '[0,8)'"),
    (["--device_num", "[0,9)"], "has no address_8= line for device 8"),
])
def test_bad_device_range_or_missing_address_is_one_line(tmp_path, flags, message):
    (tmp_path / "hccn.conf").write_text(HCCN_CONF)
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "hccl_tools.py"), "--hccn_conf",
                             str(tmp_path / "hccn.conf"), "--server_ip", "10.0.0.7", *flags], capture_output=True,
                            text=True)
    assert result.returncode == 1 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def two_server_table(path, first="10.0.0.1", second="10.0.0.2"):
    servers = [{"server_id": ip, "host_nic_ip": "reserve",
                "device": [{"device_id": str(d), "device_ip": f"192.{s}.0.{d}", "rank_id": str(4 * s + d)}
                           for d in range(4)]} for s, ip in enumerate((first, second))]
    path.write_text(json.dumps({"version": "1.0", "server_count": "2", "server_list": servers, "status": "completed"}))
    return path


def launch_ascend(tmp_path, table, **env):
    (tmp_path / "records").mkdir(exist_ok=True)
    return subprocess.run(["bash", str(ROOT / "scripts" / "run_distributed_pretrain_ascend.sh"),
                           str(tmp_path / "records"), str(table), "5", "--train_steps", "7"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "DRY_RUN": "1", **env})


def test_each_server_of_a_multi_server_table_starts_only_its_devices_with_the_table_ranks(tmp_path):
    """The zoo's multi-server launch: on each server the launcher starts that server's devices (SERVER_ID or this
    host's address), rank ids as the table gives them, each bound to its share of the cores; nothing starts for
    a host the table does not list."""
    table = two_server_table(tmp_path / "two.json")
    for server_id, ranks in (("10.0.0.1", [0, 1, 2, 3]), ("10.0.0.2", [4, 5, 6, 7])):
        result = launch_ascend(tmp_path, table, SERVER_ID=server_id)
        lines = result.stdout.splitlines()
        assert result.returncode == 0 and len(lines) == 4, result.stderr
        assert [int(line.split()[0].split("=")[1]) for line in lines] == ranks
        assert [line.split()[1] for line in lines] == [f"DEVICE_ID={d}" for d in range(4)]
        assert all("--device_id=" in line and "--epoch_size=5 " in line and line.endswith("--train_steps 7")
                   for line in lines)
        assert all(f"--device_id={d} " in line for d, line in enumerate(lines))
    result = launch_ascend(tmp_path, table)
    assert result.returncode == 1 and not result.stdout
    assert "is this host: set SERVER_ID" in result.stderr and result.stderr.count("\n") == 1

    local = launch_ascend(tmp_path, two_server_table(tmp_path / "local.json", "10.255.255.1", "127.0.0.1"))
    assert [line.split()[0] for line in local.stdout.splitlines()] == [f"RANK_ID={r}" for r in (4, 5, 6, 7)]
    assert "taskset" not in launch_ascend(tmp_path, table, SERVER_ID="10.0.0.1", BIND_CORES="false").stdout


def test_cores_are_shared_out_without_overlap():
    import importlib.util
    spec = importlib.util.spec_from_file_location("local_devices", ROOT / "scripts" / "local_devices.py")
    local_devices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(local_devices)
    servers = [{"server_id": "a", "device": [{"device_id": str(d), "rank_id": str(d)} for d in range(8)]}]
    ranges = [cores for _, _, cores in local_devices.plan(servers, servers[0], 192)]
    assert ranges == [f"{24 * d}-{24 * d + 23}" for d in range(8)]


def test_gpu_launcher_takes_msrun_multi_node_settings(tmp_path):
    (tmp_path / "records").mkdir()
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_distributed_pretrain_for_gpu.sh"), "16", "40",
                             str(tmp_path / "records")], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "DRY_RUN": "1", "LOCAL_WORKER_NUM": "8", "MASTER_ADDR": "10.0.0.1",
                                 "NODE_RANK": "1", "MASTER_PORT": "9000"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("msrun --worker_num=16 --local_worker_num=8 --master_addr=10.0.0.1 "
                                    "--master_port=9000 --node_rank=1 ")
