"""Billing run on a Ray cluster: ``ray job submit -- python -m rayjobs.billing ...``.

Joins the cluster (``actors.attach``: the job's own under ``ray job submit``, else
``--address``), hands the request to the data centre's ControlServer (created on the head
on first use), shows progress until the run's end signal, prints it and exits non-zero if a
section failed. Every refusal is one line on stderr with the exit code of
``gridfare.exit_codes``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import ray

from actors.control_server import get_control_server
from gridfare.billing.request import RunRequest
from gridfare.errors import GridfareError
from gridfare.exit_codes import INTERRUPTED, SECTIONS_FAILED, error_line, exit_code
from gridfare.money import format_cny

END_WAIT_S = 10.0  # one long poll for the end signal; then asked again


def submit_and_wait(datacentre: str, period: str | None = None, *,
                    sections: Sequence[str] | None = None,
                    resume_run_id: str | None = None, tariffs_dir: str | None = None,
                    show_progress: bool = True, poll_s: float = 0.5,
                    runtime_env: dict | None = None) -> dict:
    """Run billing through the ControlServer and return the run's end signal.

    Every option goes into one ``RunRequest`` (the tariff directory read here, as text),
    checked here and again by the ControlServer before it records the run.
    """
    from datasets.datacentre import DataCentre

    request = RunRequest.build(period, sections=sections, resume_run_id=resume_run_id,
                               tariffs_dir=tariffs_dir)
    # An absolute URI: the ControlServer and the tasks do not share this process's cwd.
    # Checked here, so that a path that is not a data centre is one line from the driver.
    centre = DataCentre(datacentre)
    centre.require()
    datacentre = centre.uri
    control = get_control_server(datacentre, runtime_env=runtime_env)
    try:
        run_id = ray.get(control.submit.remote(request))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, GridfareError) else None
        if cause is not None:
            raise cause from None
        raise
    print(f"run {run_id}: submitted to the control server", flush=True)
    if show_progress:
        _follow(control, run_id, poll_s)
    # A long poll: answered the moment the run ends (a restarted ControlServer answers
    # the retried call once it has carried the run on from the catalog).
    while (signal := ray.get(control.wait_end_signal.remote(run_id, END_WAIT_S))) is None:
        pass
    return signal


def _follow(control: ray.actor.ActorHandle, run_id: str, poll_s: float) -> None:
    if not sys.stdout.isatty():
        _follow_in_log(control, run_id, poll_s)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn()) as progress:
        task = progress.add_task(f"billing {run_id}", total=None)
        while True:
            state = ray.get(control.progress.remote(run_id))
            nodes = len(state["nodes"])
            progress.update(task, total=state["total"],
                            completed=state["done"] + state["failed"],
                            description=f"billing {run_id} ({state['running']} running on "
                                        f"{nodes} nodes, {state['failed']} failed)")
            if state["finished"]:
                return
            time.sleep(poll_s)


def _follow_in_log(control: ray.actor.ActorHandle, run_id: str, poll_s: float,
                   every_s: float = 2.0) -> None:
    """A job's log is not a terminal: one progress line every couple of seconds."""
    last = 0.0
    while True:
        state = ray.get(control.progress.remote(run_id))
        if state["finished"] or time.monotonic() - last >= every_s:
            last = time.monotonic()
            print(f"run {run_id}: {state['done']}/{state['total']} sections done, "
                  f"{state['failed']} failed, {state['running']} running on "
                  f"{len(state['nodes'])} nodes, {state['queued']} queued", flush=True)
        if state["finished"]:
            return
        time.sleep(poll_s)


def print_end_signal(signal: dict) -> None:
    print(f"run {signal['run_id']} {signal['status']}: {signal['sections_done']} sections "
          f"done, {signal['sections_failed']} failed, {signal['billed']:,} bills, "
          f"{signal['exceptions']:,} audit exceptions, total "
          f"{format_cny(signal['total_fen'])} CNY")
    for section, error in sorted(signal["failed"].items()):
        print(f"  section {section} failed: {error}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rayjobs.billing", description=__doc__)
    parser.add_argument("--datacentre", required=True, help="directory or pyarrow.fs URI")
    parser.add_argument("--period", help="YYYY-MM (a resume takes its run's)")
    parser.add_argument("--sections", nargs="+", help="ids or patterns (S00*); default all")
    parser.add_argument("--resume", metavar="RUN_ID")
    parser.add_argument("--tariffs", help="directory of tariff files (default: samples)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster: HOST:PORT or 'auto' (default: the job's cluster "
                             "under `ray job submit`, else a private local one)")
    args = parser.parse_args(argv)
    from actors.attach import attach

    try:
        cluster = attach(args.address, start_local=True)
        print(cluster.describe(), flush=True)
        signal = submit_and_wait(args.datacentre, args.period, sections=args.sections,
                                 resume_run_id=args.resume, tariffs_dir=args.tariffs)
    except GridfareError as exc:
        from datasets.uri import redact

        print(redact(error_line(exc, parser.prog)), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    print_end_signal(signal)
    return SECTIONS_FAILED if signal["sections_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
