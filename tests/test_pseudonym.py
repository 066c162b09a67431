import datetime as dt
import hashlib
import hmac
import stat
import subprocess
import sys

import polars as pl
import pytest
from validate_docbr import CNS, CPF

from pipelines import contract
from pipelines.pseudonym import KEY_FILE_NAME, Pseudonymizer, key_from_file, load_key
from pipelines.settings import PipelineSettings
from pipelines.validation import CNS_COLUMN, CPF_COLUMN, validate
from tests.conftest import FIXTURES

KEY = "chave-de-teste-0123456789abcdef"
CPF_OK = "11144477735"
CNS_OK = "700000000000005"  # provisional CNS: weighted sum divisible by 11


def reference_hash(key: str, kind: str, digits: str) -> str:
    """The documented scheme, computed here independently of the module."""
    return hmac.new(key.encode(), f"{kind}:{digits}".encode(), hashlib.sha256).hexdigest()


def ids(cns: list, cpf: list) -> pl.DataFrame:
    return pl.DataFrame({CNS_COLUMN: cns, CPF_COLUMN: cpf}, schema={CNS_COLUMN: pl.String, CPF_COLUMN: pl.String})


def test_fixture_identifiers_are_valid():
    assert CNS().validate(CNS_OK) and CPF().validate(CPF_OK)


def test_hash_is_hmac_sha256_hex_and_cpf_wins_over_cns():
    hashes = Pseudonymizer(KEY)(ids([CNS_OK, None, CNS_OK, None], [None, CPF_OK, CPF_OK, None])).to_list()
    assert hashes[0] == reference_hash(KEY, "cns", CNS_OK)
    assert hashes[1] == reference_hash(KEY, "cpf", CPF_OK)
    assert hashes[2] == hashes[1]  # both present: the CPF decides, so the person matches their CPF-only records
    assert hashes[3] is None
    for value in hashes[:3]:
        assert len(value) == 64 and value == value.lower() and int(value, 16) >= 0


def test_same_key_same_hash_different_key_different_hash():
    frame = ids([CNS_OK], [None])
    assert Pseudonymizer(KEY)(frame).to_list() == Pseudonymizer(KEY)(frame).to_list()
    assert Pseudonymizer(KEY)(frame).to_list() != Pseudonymizer(KEY + "x")(frame).to_list()


def test_one_identifier_column_or_none_is_enough():
    only_cpf = pl.DataFrame({CPF_COLUMN: [CPF_OK, None]})
    assert Pseudonymizer(KEY)(only_cpf).to_list() == [reference_hash(KEY, "cpf", CPF_OK), None]
    neither = pl.DataFrame({"outra": [1, 2, 3]})
    assert Pseudonymizer(KEY)(neither).to_list() == [None, None, None]


def test_short_key_is_refused_and_the_key_never_shows():
    with pytest.raises(ValueError):
        Pseudonymizer("curta")
    assert KEY not in repr(Pseudonymizer(KEY))


def test_configured_key_wins_and_no_file_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("VACINA_D1_HOME", str(tmp_path))
    monkeypatch.setenv("VACINA_D1_PSEUDONYM_KEY", KEY)
    assert load_key() == KEY.encode()
    assert Pseudonymizer.from_settings()(ids([CNS_OK], [None])).to_list() == [reference_hash(KEY, "cns", CNS_OK)]
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_without_a_key_a_0600_key_file_is_created_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("VACINA_D1_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VACINA_D1_PSEUDONYM_KEY", raising=False)
    first = load_key()
    path = tmp_path / "home" / KEY_FILE_NAME
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert len(first) >= 32
    assert load_key() == first
    assert load_key(PipelineSettings()) == first
    assert path.read_bytes() == content
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE_NAME]  # no temporary file left behind
    hashed = Pseudonymizer.from_settings()(ids([CNS_OK], [None])).to_list()
    assert hashed == [reference_hash(first.decode(), "cns", CNS_OK)]


def test_processes_racing_to_create_the_key_agree(tmp_path):
    path = tmp_path / "corrida" / KEY_FILE_NAME
    script = (
        "import hashlib, sys, time\n"
        "from pathlib import Path\n"
        "from pipelines.pseudonym import key_from_file\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "print(hashlib.sha256(key_from_file(Path(sys.argv[1]))).hexdigest())\n"
    )
    import time

    start = time.time() + 1.5  # let every interpreter finish importing first
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), str(start)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    digests = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(digests) == 1
    assert digests == {hashlib.sha256(key_from_file(path)).hexdigest()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_empty_key_file_is_an_error_not_a_silent_new_key(tmp_path):
    path = tmp_path / KEY_FILE_NAME
    path.write_text("")
    with pytest.raises(ValueError, match="chave"):
        key_from_file(path)


def test_validate_hashes_valid_and_quarantined_records_alike():
    sample = pl.read_csv(FIXTURES / "sample_pni_rotina_rows.csv", separator=";", infer_schema=False)
    frame = sample.with_columns(
        pl.lit(None, pl.String).alias("co_paciente"),
        pl.Series(CNS_COLUMN, [CNS_OK, "700000000000006"]),
    )
    result = validate(frame, today=dt.date(2026, 1, 1), pseudonymize=Pseudonymizer(KEY))
    assert result.valid["co_paciente"].to_list() == [reference_hash(KEY, "cns", CNS_OK)]
    assert result.quarantine["co_paciente"].to_list() == [reference_hash(KEY, "cns", "700000000000006")]
    assert result.quarantine[contract.QUARANTINE_REASONS_COLUMN].to_list() == [["cns_invalido"]]
    for part in (result.valid, result.quarantine):
        text = repr(part.rows())
        assert CNS_OK not in text and "700000000000006" not in text
