"""`smithers runs start WORKFLOW --db`: the run is driven in the foreground until it ends
or waits for someone, and the command says how it goes on."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
from pathlib import Path

from smithers import open_store
from smithers.queries import get_run, run_outputs
from tests.cli.helpers import CLI, clean_env, ok, one_line_error, runs, smithers
from tests.helpers import EXAMPLES

TIMER_WORKFLOW = """
from pydantic import BaseModel

from smithers import Task, Timer, Workflow, create_smithers


class Done(BaseModel):
    ok: bool


smithers, outputs = create_smithers(done=Done)


@smithers
def workflow(ctx):
    return Workflow(
        "timed",
        [Timer("nap", duration_ms=300), Task("after", output=outputs.done, run={"ok": True})],
    )
"""


def command(line: str) -> list[str]:
    """A `smithers ...` hint as argv for the module, `smithers` replaced by the CLI."""
    words = shlex.split(line.split(": ", 1)[1] if ": " in line else line)
    assert words[0] == "smithers", line
    return words[1:]


def test_a_run_to_its_end_prints_its_id_and_where_its_outputs_are(tmp_path: Path) -> None:
    # A relative --db: the hint names the file absolutely, so it works from anywhere.
    done = smithers(
        "runs", "start", str(EXAMPLES / "hello.py"), "--db", "rel.db", "--input", '{"name": "Ada"}',
        cwd=tmp_path,
    )  # fmt: skip
    lines = ok(done).splitlines()
    run_id = lines[0]
    assert run_id.startswith("smi_")
    assert lines[1] == f"run {run_id} finished"
    db = f"sqlite:///{tmp_path / 'rel.db'}"
    assert lines[2] == f"  outputs: smithers runs show {run_id} --outputs --db {db}"
    shown = ok(smithers(*command(lines[2])))  # from another folder
    assert shown.splitlines()[-1] == 'outputs   greet  {"message": "Hello, Ada!"}'

    as_json = smithers("runs", "start", str(EXAMPLES / "hello.py"), "--db", db, "--json")
    assert json.loads(ok(as_json)) == {
        "runId": json.loads(as_json.stdout)["runId"],
        "status": "finished",
    }


def test_a_run_waiting_for_approval_is_let_go_and_goes_on_as_told(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    done = smithers(
        "runs", "start", "approval.py", "--root", str(EXAMPLES), "--db", db,
        "--input", '{"msg": "hi"}', "--run-id", "appr-start",
    )  # fmt: skip
    lines = ok(done).splitlines()
    assert lines[:2] == ["appr-start", "run appr-start waits for approval of review"]
    assert lines[2] == f"  approve: smithers runs approve appr-start review --db {db}"
    assert lines[3] == f"  deny:    smithers runs deny appr-start review --db {db}"
    resume = f"smithers up {EXAMPLES / 'approval.py'} --run-id appr-start --resume --db {db}"
    assert lines[4] == f"  then it goes on in: {resume}"

    store = open_store(db)
    try:
        parked = get_run(store, "appr-start")
        assert parked is not None and parked.runtime_owner_id is None  # nobody holds it
        ok(smithers(*command(lines[2]), "--by", "eve"))
        went_on = smithers(*command(lines[4]))
        assert went_on.returncode == 0, went_on.stderr
        assert run_outputs(store, "appr-start")["ship"] == {"text": "HI", "approved_by": "eve"}
    finally:
        store.close()


def test_a_run_waiting_for_a_signal_says_how_to_send_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    lines = ok(smithers("runs", "start", str(EXAMPLES / "signal.py"), "--db", db)).splitlines()
    run_id = lines[0]
    assert lines[1] == f"run {run_id} waits for signal payment"
    assert lines[2] == f"  send: smithers runs signal {run_id} payment --data '{{}}' --db {db}"


def test_a_timer_is_waited_out_here(tmp_path: Path) -> None:
    (tmp_path / "timed.py").write_text(TIMER_WORKFLOW)
    db = str(tmp_path / "t.db")
    done = smithers("runs", "start", "timed.py", "--db", db, SMITHERS_ROOT=str(tmp_path))
    lines = ok(done).splitlines()
    assert lines[1] == f"run {lines[0]} finished"


def test_a_failed_run_is_an_error_after_its_id(tmp_path: Path) -> None:
    db = str(tmp_path / "f.db")
    done = smithers("runs", "start", str(EXAMPLES / "failing.py"), "--db", db)
    said = one_line_error(done, 1)
    run_id = done.stdout.strip()
    assert said == f"smithers: run {run_id} failed: ValueError: this task always fails"
    as_json = smithers("runs", "start", str(EXAMPLES / "failing.py"), "--db", db, "--json")
    assert json.loads(as_json.stdout)["status"] == "failed"
    one_line_error(as_json, 1)


def test_refusals_are_one_line(tmp_path: Path) -> None:
    db = ("--db", str(tmp_path / "x.db"))
    missing = smithers("runs", "start", str(tmp_path / "none.py"), *db)
    assert "cannot load workflow" in one_line_error(missing, 2)
    bad = smithers("runs", "start", str(EXAMPLES / "hello.py"), "--input", "[1", *db)
    assert "--input is not valid JSON" in one_line_error(bad, 2)
    taken = smithers("runs", "start", str(EXAMPLES / "hello.py"), "--run-id", "same", *db)
    ok(taken)
    again = smithers("runs", "start", str(EXAMPLES / "hello.py"), "--run-id", "same", *db)
    assert "already exists" in one_line_error(again, 1)


def test_the_environment_names_the_database_and_the_root(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    done = runs("start", "hello.py", SMITHERS_DB=str(db), SMITHERS_ROOT=str(EXAMPLES))
    run_id = ok(done).splitlines()[0]
    listed = json.loads(ok(runs("list", "--json", SMITHERS_DB=str(db))))
    assert [r["runId"] for r in listed] == [run_id]


def test_ctrl_c_lets_the_run_go_and_says_how_it_goes_on(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'slow.db'}"
    proc = subprocess.Popen(
        [*CLI, "runs", "start", str(EXAMPLES / "slow.py"), "--db", db, "--input", '{"seconds": 2}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130, err
    assert err == "smithers: interrupted\n"
    resume = f"smithers up {EXAMPLES / 'slow.py'} --run-id {run_id} --resume --db {db}"
    assert out == f"run {run_id} let go; it goes on in: {resume}\n"
    store = open_store(db)
    try:
        run = get_run(store, run_id)
        assert run is not None and run.status == "running" and run.runtime_owner_id is None
        went_on = smithers(*command(resume))
        assert went_on.returncode == 0, went_on.stderr
        assert run_outputs(store, run_id)["wait"] == {"seconds": 2.0}
    finally:
        store.close()
