"""LaNMax's resume log: the epoch so far, one JSON line per batch, keyed by the optimizer step.

Keras-free. `StateLog` reads and writes the file; `find_resume` says what to restore for a given
restored optimizer step. Records (one JSON object per line):

- ``header``: format version, seed, layer names and their domains;
- ``epoch``: an epoch starts: its `EpochState` (log-rates, generator) and the optimizer step;
- ``batch``: one training batch ended: its point (or a skip), the generator state, the running
  mean loss, the compiled metrics' variables, the optimizer step after it, the step of p if the
  epoch's update ran there;
- ``end``: the epoch ended (the update, when it ran at `on_epoch_end`).

The log holds the previous epoch and the current one: a backup made at an epoch's last batch,
before `on_epoch_end`, is resumed by Keras as that epoch, which it replays.
"""

import dataclasses
import json
import os

from tf_lanmax.lanmax.estimator import EpochState, Point, Step

FILENAME = "lanmax_state.jsonl"
VERSION = 1


class StateLog:
    """The JSON-lines file `<backup_dir>/lanmax_state.jsonl`.

    The epoch's first record is written atomically (temp file in the same folder, then
    `os.replace`), which also drops the previous epoch's lines. Batch records are appended and
    flushed: rewriting the whole epoch at every batch would cost O(n^2); a line cut short by a
    crash fails to parse and is dropped with everything after it.

    Args:
        backup_dir: folder of the log (created when first written).
        worker: `None` for the chief's `lanmax_state.jsonl`; another worker's name (e.g.
            `"worker-1"`) gives it its own `lanmax_state.worker-1.jsonl`, so each process of a
            multi-worker run restores from what it wrote, on a shared folder or not.
    """

    def __init__(self, backup_dir, worker=None):
        self.backup_dir = os.fspath(backup_dir)
        name = FILENAME if worker is None else FILENAME.replace(".jsonl", f".{worker}.jsonl")
        self.path = os.path.join(self.backup_dir, name)

    def read(self):
        """The records, oldest first; `[]` when there is no log."""
        if not os.path.exists(self.path):
            return []
        records = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # cut short by a crash
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return records

    def rewrite(self, records):
        """Replaces the log by `records`, atomically."""
        os.makedirs(self.backup_dir, exist_ok=True)
        temp = f"{self.path}.tmp-{os.getpid()}"
        with open(temp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(record) + "\n" for record in records)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.path)

    def append(self, record):
        """Appends one record and flushes it."""
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def delete(self):
        """Removes the log (the run finished)."""
        if os.path.exists(self.path):
            os.remove(self.path)


def last_epoch(records):
    """The records from the last epoch start on (`[]` if there is none), header excluded."""
    starts = [i for i, record in enumerate(records) if record.get("kind") == "epoch"]
    return list(records[starts[-1] :]) if starts else []


def header_record(seed, layer_names, layer_domains):
    return {
        "kind": "header",
        "version": VERSION,
        "seed": int(seed),
        "layers": list(layer_names),
        "domains": list(layer_domains),
    }


def epoch_record(state, iteration):
    return {"kind": "epoch", "iteration": int(iteration), "state": state.to_dict()}


def batch_record(state, batch, iteration, point, skipped, running_mean, metrics):
    """The record of one batch: `point` is its `Point` or `None`; `skipped`: non-finite loss."""
    return {
        "kind": "batch",
        "epoch": state.epoch,
        "batch": int(batch),
        "iteration": int(iteration),
        "rng_state": state.rng_state,
        "point": None if point is None else point.to_dict(),
        "skipped": bool(skipped),
        "running_mean": float(running_mean),
        "metrics": metrics,
        "step": None if state.step is None else state.step.to_dict(),
    }


def end_record(state, iteration):
    return {
        "kind": "end",
        "epoch": state.epoch,
        "iteration": int(iteration),
        "step": None if state.step is None else state.step.to_dict(),
    }


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a resumed run continues, as found in the log.

    Attributes:
        kind: `"epoch"` (continue at the start of `epoch`) or `"batch"` (Keras replays `epoch`
            from batch 0; install `state` after batch `batch`).
        epoch: the epoch Keras resumes.
        seed: the perturbation seed of the run.
        state: the `EpochState` to continue from (for `"epoch"`: its `log_rates` only).
        start: the `EpochState` at the start of `epoch` (`"batch"` only: the replay's).
        batch: the last batch of `epoch` the restored weights include (`"batch"` only).
        running_mean: Keras' running mean loss after `batch`.
        metrics: values of the model's metrics variables after `batch`.
        skipped: non-finite batches of the epoch up to `batch`.
        records: the log truncated to the restored position.
    """

    kind: str
    epoch: int
    seed: int
    state: EpochState
    start: EpochState | None = None
    batch: int = -1
    running_mean: float = 0.0
    metrics: list | None = None
    skipped: int = 0
    records: tuple = ()


def find_resume(records, iteration, epoch, layer_names, layer_domains):
    """What to restore when Keras resumes at `epoch` with weights at optimizer step `iteration`.

    Args:
        records: the log's records.
        iteration: the optimizer's step count of the restored weights.
        epoch: the epoch `fit` starts at.
        layer_names: fault-prone layer names of this run.
        layer_domains: their domain indices.

    Returns:
        A `Resume`; `None` when the log is empty or holds no progress to restore (it starts
        at epoch 0 before any batch); the string `"mismatch"` when the log does not contain
        the restored position.

    Raises:
        ValueError: when the log was written for other layers or domains.
    """
    if not records or records[0].get("kind") != "header" or (iteration, epoch) == (0, 0):
        return None  # nothing logged, or a fresh model: nothing was restored
    header = records[0]
    if header.get("version") != VERSION:
        return "mismatch"
    if header["layers"] != list(layer_names) or header["domains"] != list(layer_domains):
        raise ValueError(
            "The LaNMax state in `backup_dir` was written for fault-prone layers "
            f"{header['layers']} in domains {header['domains']}; this run has {list(layer_names)} "
            f"in {list(layer_domains)}. Use a fresh `backup_dir`, or the same model and `domains`."
        )
    seed = int(header["seed"])
    state, start, skipped, last, found = None, None, 0, None, []
    for index, record in enumerate(records[1:], start=1):
        kind = record.get("kind")
        if kind == "epoch":
            state, skipped, last = EpochState.from_dict(record["state"]), 0, None
            start = state
        elif state is None:
            continue
        elif kind == "batch":
            point = record["point"]
            points = state.points + (() if point is None else (Point.from_dict(point),))
            step = None if record["step"] is None else Step.from_dict(record["step"])
            state = dataclasses.replace(
                state,
                rng_state=record["rng_state"],
                points=points,
                step=step or state.step,
                log_rates=step.log_rates if step else state.log_rates,
            )
            skipped += bool(record["skipped"])
            last = record
        elif kind == "end":
            if record["step"] is not None and state.step is None:
                step = Step.from_dict(record["step"])
                state = dataclasses.replace(state, step=step, log_rates=step.log_rates)
        else:
            continue
        if record["iteration"] == iteration:
            found.append((index, kind, state, start, skipped, last))
    # The latest record at that step decides; a batch record and the epoch's end (or the next
    # epoch's start) can share it: Keras' epoch says which one the weights belong to.
    for index, kind, state, start, skipped, last in reversed(found):
        kept = tuple(records[: index + 1])
        if kind == "epoch" and epoch == state.epoch:
            if epoch == 0:
                return None  # no progress: a fresh run
            return Resume("epoch", epoch, seed, state, records=kept[:-1])
        if state.step is not None and epoch == state.epoch + 1:
            return Resume("epoch", epoch, seed, state, records=kept)
        if kind == "batch" and epoch == state.epoch:
            return Resume(
                "batch",
                epoch,
                seed,
                state,
                start=start,
                batch=last["batch"],
                running_mean=last["running_mean"],
                metrics=last["metrics"],
                skipped=skipped,
                records=kept,
            )
    return "mismatch"
