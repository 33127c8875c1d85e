"""The rank table generator feeds the Ascend launcher: its output is what the launcher parses."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

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
