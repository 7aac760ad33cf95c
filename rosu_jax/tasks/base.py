"""What a task is: the interface between the generic pipeline (``rosu_jax.runs``) and one kind of unlearning.

A task owns its data, its model boundary, its loss terms and its metrics. The pipeline asks it, in order:

    task.validate()                               cheap checks of the settings, before any work
    data = task.load()                            the data, with a content fingerprint
    params, model_state = task.init_model(seed)   the model to train (or a loaded checkpoint)
    task.training_data(data, None | setting, seed)  what the original model / the reference model learn from
    setting = task.setting(data, scenario, seed)  one forget request: forget set, retain set, evaluation sets
    task.unlearning_data(setting, seed, ...)      (forget batch, retain batch) pairs for the unlearning steps
    task.loss_terms()                             named loss functions the methods combine (see below)
    task.evaluate(...), task.compare(...)         metrics of a model, and against the reference model

Loss terms are ``(params, model_state, batch, key) -> (loss, new_model_state)`` unless said. Names a method may
require (``rosu_jax.methods``):

  forget      the quantity whose *increase* is forgetting (mean cross-entropy / NLL on the forget batch)
  retain      the loss to keep low on the retain batch (carries model state such as BatchNorm statistics)
  relabel     the loss of forget inputs towards substitute targets (random wrong labels; refusals for IdK)
  outputs, divergence, supervised   a distillation view (SCRUB): ``outputs(params, model_state, batch, *, train)
              -> (outputs, model_state)``, ``divergence(teacher_out, student_out)``, ``supervised(outputs, batch)``
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from rosu_jax.core.types import PyTree

Batch = Any


@dataclasses.dataclass(frozen=True)
class Column:
    """A metric column of the results table: ``key`` in the rows, ``header`` shown, the better direction
    ('higher', 'lower', or 'reference' = closest to the reference model), a one-line meaning, and the number format
    (e.g. '.3g' for p-values that span orders of magnitude)."""

    key: str
    header: str
    better: str
    meaning: str
    fmt: str = ".2f"


@dataclasses.dataclass(frozen=True)
class TrainingRecipe:
    """How the original and the reference models are trained (the same recipe for both)."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    augment: bool = False

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"train.epochs and train.batch_size must be >= 1, got {self.epochs}, {self.batch_size}.")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise ValueError(f"train.lr must be a finite number > 0, got {self.lr!r}.")
        if not 0 <= self.weight_decay < float("inf") or not 0 <= self.momentum < float("inf"):
            raise ValueError("train.weight_decay and train.momentum must be finite and >= 0.")


@dataclasses.dataclass
class TrainingData:
    """What a model is trained on: ``batches(epoch)`` yields the batches of one epoch (a pure function of the
    seed and the epoch, so a resumed run sees the same batches), ``steps_per_epoch`` of them."""

    steps_per_epoch: int
    batches: Callable[[int], Iterator[Batch]]
    num_examples: int


@dataclasses.dataclass
class UnlearningData:
    """What one unlearning run steps through: ``pairs(epochs)`` yields ``(forget_batch, retain_batch)`` for every
    step of ``epochs`` epochs (what an epoch is belongs to the task); ``forget_batches()`` is one ordered pass over
    the forget set (SalUn's saliency, NPO's reference); ``example`` is one pair, for shapes; ``info``: static facts
    a method's extras may need (e.g. ``{"num_topics": 2, "hidden_size": 64}``)."""

    steps_per_epoch: int
    epochs: int
    num_forget: int
    pairs: Callable[[int], Iterator[tuple[Batch, Batch]]]
    forget_batches: Callable[[], Iterator[Batch]]
    example: tuple[Batch, Batch]
    info: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Evaluation:
    """``metrics``: the row's numbers (JSON-able, NaN-free floats or None); ``details``: what ``compare`` needs
    beyond them (e.g. per-item truth ratios), never written out; ``artifact``: a JSON document kept with the row and
    written beside the report (e.g. TOFU's per-item evaluation log)."""

    metrics: dict[str, float | None]
    details: Any = None
    artifact: dict | None = None


@dataclasses.dataclass
class Setting:
    """One forget request of one seed (or, with ``requests``, a sequence of them): ``scenario``, the task's split,
    ``key`` (only the settings that apply to this scenario: they name cached results), and the reference model
    (Retrain): what it learns from
    (``reference_training``), or its evaluation read from elsewhere (``reference_evaluation``, e.g. a saved
    evaluation log of a model trained without the forget set), or neither when the task has no reference."""

    scenario: str
    seed: int
    key: dict
    split: Any
    reference_training: TrainingData | None
    reference_evaluation: Evaluation | None = None
    requests: list[Setting] | None = None  # a sequence of deletion requests, each starting from the model the last
    # one left (then this setting is only their container)


class Task(abc.ABC):
    """One kind of unlearning (see the module docstring for the order of calls)."""

    name: ClassVar[str]
    columns: ClassVar[tuple[Column, ...]]
    summary: ClassVar[str | None]  # the column key that ranks methods (lower is better), or None
    # with no single ranking: the column keys on which each ROSU row is compared, paired over seeds, with the same
    # objective without ROSU (ROSU-NPO vs NPO) and with UAM's (ROSU-NPO vs UAM-NPO, ROSU vs UAM)
    paired: ClassVar[tuple[str, ...]] = ()
    reference_row: ClassVar[str | None] = "Retrain"  # the model trained without the forget set
    group_keys: ClassVar[tuple[str, ...]] = ("scenario",)  # row fields that make one table
    provides: ClassVar[frozenset[str]]  # loss-term names of loss_terms()

    def __init__(self, config):
        self.config = config

    # -- before any work -------------------------------------------------------------------------------------
    def choices(self) -> list[str]:
        """Lines saying what the task chose where the user left something open (printed at the start)."""
        return []

    @abc.abstractmethod
    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad setting and the fix; must take seconds, not minutes."""

    # -- data and models ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def load(self) -> Any:
        """The task's data; ``data.fingerprint`` is a content hash (it keys every cached result)."""

    @abc.abstractmethod
    def scenarios(self) -> tuple[str, ...]: ...

    @abc.abstractmethod
    def setting(self, data: Any, scenario: str, seed: int) -> Setting: ...

    @abc.abstractmethod
    def init_model(self, seed: int) -> tuple[PyTree, PyTree]:
        """``(params, model_state)`` of a fresh model for ``seed``."""

    @abc.abstractmethod
    def model_key(self) -> dict:
        """Everything about the model and its training that changes the trained weights (keys checkpoints)."""

    @abc.abstractmethod
    def training_recipe(self) -> TrainingRecipe: ...

    def model_seed(self, seed: int) -> int:
        """The seed the original model, the split and the reference model of run seed ``seed`` are drawn with. The
        run seed by default (every seed repeats the whole experiment); a task may fix it so that seeds vary only
        the unlearning runs (batch order), e.g. to study the methods' own spread on one expensive model."""
        return seed

    def pretrained(self, seed: int) -> tuple[PyTree, PyTree] | None:
        """``(params, model_state)`` of an original model given by the user (a checkpoint), or None to train one."""
        return None

    def unlearning_start(self, params: PyTree, model_state: PyTree) -> tuple[PyTree, PyTree]:
        """What an unlearning run trains from the original weights: e.g. only a subset of the parameters, the rest
        moved into the model state (frozen). Identity by default."""
        return params, model_state

    @abc.abstractmethod
    def training_data(self, data: Any, seed: int) -> TrainingData:
        """What the original model learns from."""

    @abc.abstractmethod
    def unlearning_data(self, setting: Setting, seed: int) -> UnlearningData: ...

    @abc.abstractmethod
    def unlearning_key(self) -> dict:
        """The settings of an unlearning run that are not the method's (epochs, batch size): they key rows."""

    @abc.abstractmethod
    def loss_terms(self) -> dict[str, Callable]: ...

    def training_loss(self) -> Callable:
        """The loss the original and reference models are trained with (the retain term by default)."""
        return self.loss_terms()["retain"]

    # -- metrics ------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, params: PyTree, model_state: PyTree, setting: Setting) -> Evaluation: ...

    def relearn_batch(self, setting: Setting, k: int) -> Batch:
        """One batch of the first ``k`` forget examples, for the relearning attack (``rosu_jax.runs.relearn``)."""
        raise NotImplementedError(f"the {self.name} task has no relearning attack")

    def forget_score(self, params: PyTree, model_state: PyTree, setting: Setting) -> float:
        """How much of the forget set the model knows (higher = more), for the relearning attack."""
        raise NotImplementedError(f"the {self.name} task has no relearning attack")

    def export(self, params: PyTree, model_state: PyTree, folder: Path) -> None:
        """Write a finished model into the new folder ``folder`` for use outside this run (``--save-models``).

        By default an orbax checkpoint of ``{"params", "model_state"}`` in ``folder/checkpoint`` (restore it with
        ``orbax.checkpoint.StandardCheckpointer`` and the task's ``init_model`` as the template)."""
        import orbax.checkpoint as ocp

        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(folder.absolute() / "checkpoint", {"params": params, "model_state": model_state})

    def validation(self, setting: Setting) -> Setting | None:
        """``setting`` scored on held-out validation data (fair tuning selects on it), or None when there is none."""
        return None

    def compare(self, evaluation: Evaluation, reference: Evaluation | None) -> dict[str, float | None]:
        """Numbers that need the reference model's evaluation (e.g. Avg.Gap); {} by default."""
        return {}

    def method_defaults(self) -> dict[str, dict[str, Any]]:
        """Per-method hyperparameters this task (or its dataset) sets, ``{"*": {...}, "ROSU": {...}}``."""
        return {}

    @property
    def default_methods(self) -> tuple[str, ...] | None:
        """The methods run when none are named (None: every method whose loss terms this task provides)."""
        return None

    def row_fields(self) -> dict[str, Any]:
        """Fields every row of this task carries (e.g. dataset and model)."""
        return {}


def replace_fields(config, changes: dict, what: str):
    """``dataclasses.replace`` that names an unknown field and lists the known ones (for ``--set``)."""
    known = [f.name for f in dataclasses.fields(config)]
    unknown = [k for k in changes if k not in known]
    if unknown:
        raise ValueError(f"--set {what}.{unknown[0]}: no such setting; {what} settings are {', '.join(known)}.")
    return dataclasses.replace(config, **changes)


# Training flags every task's command line may offer: flag attribute -> TrainingRecipe field.
TRAIN_FLAGS = {"epochs": "epochs", "train_lr": "lr", "batch_size": "batch_size"}


def configure(
    config, args, flags: tuple[str, ...], task_sets: dict, *, changes: dict | None = None, train: dict | None = None
):
    """A task config from the command line: ``config`` with every flag in ``flags`` that was given (the args
    attribute is named like the config field), the training flags (``TRAIN_FLAGS``, where the parser has them),
    the ``--set train.NAME=…`` / ``--set task.NAME=…`` values, and the task's own ``changes`` / ``train`` changes."""
    changes = dict(changes or {}) | {f: getattr(args, f) for f in flags if getattr(args, f) is not None}
    train = dict(train or {}) | {
        field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items() if getattr(args, flag, None) is not None
    }
    train |= task_sets.pop("train", {})
    if train:
        changes["train"] = replace_fields(config.train, train, "train")
    changes |= task_sets.pop("task", {})
    if task_sets:
        raise ValueError(f"--set {next(iter(task_sets))}.…: unknown target; use METHOD.NAME, train.NAME or task.NAME.")
    return replace_fields(config, changes, "task")
