"""A persona's model in memory: loaded on first use, reloaded when its files change, and
kept in one process-wide cache so a fleet of personas fits in a small machine.

    handle = MODELS.handle(Path("models/ada"))   # one handle per model folder, shared
    loaded = handle.get()                         # sampler, novelty index, words, critic

`ModelCache` keeps at most `capacity` models loaded; the least recently used one is
dropped when another is loaded, and loaded again on its next use (about 0.07 s for the
shipped persona, against the 0.8 s a wake takes). At most `workers` models sample at
once (`at_work`, one per usable core by default): wakes bunched closer than they can be
served wait their turn there instead of each holding a model and its sampling buffers, so
the memory a fleet takes does not depend on how closely its wakes are spaced. Personas
that name the same model folder share one loaded copy: the engine is read-only once built. A wake keeps the
`Loaded` it got, so dropping a model never pulls it from under a running wake.

The trainer swaps models/<name>/ atomically; the handle notices (file stamps) and loads
the new model on the next use. A corrupt new model is refused with a log line and the
last good one keeps serving while it is in memory; one that was dropped from the cache in
between fails the wake in one line instead. Never imports TensorFlow.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from bot.core.errors import ModelError
from bot.core.log import event
from bot.engine.card import CARD_FILE, MODEL_FILE, NGRAMS_FILE, WORDS_FILE, read_card
from bot.engine.critic import CRITIC_FILE, Critic
from bot.engine.engines import load_engine
from bot.engine.native import usable_cpus
from bot.engine.novelty import load_index
from bot.engine.sampler import Sampler
from bot.engine.vocab import WordTrie

log = logging.getLogger(__name__)

# Models kept loaded by default: the shipped persona takes about 10 MB in memory, so 32
# is at most ~320 MB, and a daemon's worker pool (20 threads) never waits on a reload.
DEFAULT_CAPACITY = 32

T = TypeVar("T")


@dataclass
class Loaded:
    sampler: Sampler
    novelty_index: np.ndarray | None
    stamp: tuple[float, ...]
    words: WordTrie | None = None  # the corpus' words; sampling stays inside them
    critic: Critic | None = None  # ranks candidates by how much they read like the author


class ModelHandle:
    """The sampler, novelty index, word list and critic of one model folder, reloaded when
    the files on disk change; dropped and reloaded on demand by its `ModelCache`."""

    def __init__(self, directory: Path, cache: ModelCache | None = None) -> None:
        self.directory = directory
        self.cache = cache
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()

    @property
    def in_memory(self) -> bool:
        return self._loaded is not None

    def _stamp(self) -> tuple[float, ...]:
        stamps: list[float] = []
        for name in (CARD_FILE, MODEL_FILE, NGRAMS_FILE, WORDS_FILE, CRITIC_FILE):
            try:
                st = (self.directory / name).stat()
                stamps += [st.st_mtime_ns, st.st_ino, st.st_size]
            except FileNotFoundError:
                stamps += [-1]
        return tuple(stamps)

    def get(self) -> Loaded:
        loaded = self._get()
        if self.cache is not None:
            self.cache.used(self)  # outside our lock: it may drop other handles
        return loaded

    def kind(self) -> str:
        """The model's kind (card.json), without loading the model when it is not loaded."""
        loaded = self._loaded
        return loaded.sampler.card.kind if loaded is not None else read_card(self.directory).kind

    def at_work(self) -> AbstractContextManager[object]:
        """A place among the cache's `workers` for as long as this model samples (nothing
        to wait for without a cache)."""
        return self.cache.at_work() if self.cache is not None else nullcontext()

    def drop(self) -> None:
        """Forget the loaded model (the next `get` loads it again)."""
        with self._lock:
            self._loaded = None

    def _get(self) -> Loaded:
        with self._lock:
            stamp = self._stamp()
            if self._loaded is not None and stamp == self._loaded.stamp:
                return self._loaded
            try:
                sampler = load_engine(self.directory)  # by the card's model kind
                ngrams = self.directory / NGRAMS_FILE
                index = load_index(ngrams) if ngrams.is_file() else None
                name = sampler.card.name
                words = _curated(self.directory / WORDS_FILE, WordTrie.load, "word list", name)
                critic = _curated(self.directory / CRITIC_FILE, Critic.load, "critic", name)
            except (ModelError, OSError, ValueError) as err:
                if self._loaded is None:
                    if isinstance(err, ModelError):
                        raise
                    raise ModelError(
                        f"{self.directory}: cannot read the persona ({err})", "retrain it"
                    ) from err
                event(log, "model_refused", logging.ERROR, model=str(self.directory),
                      error=str(err), keeping="last good model")  # fmt: skip
                self._loaded.stamp = stamp  # do not retry every wake; a new write changes it
                return self._loaded
            if self._loaded is not None:
                event(log, "model_reloaded", model=str(self.directory))
            self._loaded = Loaded(sampler, index, stamp, words, critic)
            return self._loaded


def _curated(path: Path, load: Callable[[Path], T], what: str, name: str) -> T | None:
    """The word list or critic at `path`, None where there is none. A truncated or
    damaged one is a one-line ModelError naming the file and the command that rebuilds
    it (a hot reload keeps the last good model on it)."""
    if not path.is_file():
        return None
    hint = f"rebuild it with `bot train -p {name} --corpus <its corpus> --critic-only`"
    try:
        return load(path)
    except ModelError as err:
        raise ModelError(err.message, hint) from err
    except (OSError, ValueError) as err:
        text = str(err)
        if not text.startswith(f"{path}: "):
            text = f"{path}: cannot read the {what} ({text})"
        raise ModelError(text, hint) from err


class ModelCache:
    """One `ModelHandle` per model folder, at most `capacity` of them loaded at a time
    (least recently used dropped first)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, workers: int | None = None) -> None:
        self.capacity = capacity
        self.workers = workers or usable_cpus()
        self._work = threading.BoundedSemaphore(self.workers)
        self._handles: dict[Path, ModelHandle] = {}
        self._recent: OrderedDict[Path, ModelHandle] = OrderedDict()  # loaded, oldest first
        self._lock = threading.Lock()

    def handle(self, directory: Path) -> ModelHandle:
        key = directory.resolve()
        with self._lock:
            found = self._handles.get(key)
            if found is None:
                found = self._handles[key] = ModelHandle(directory, self)
            return found

    def resize(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a model cache holds at least one model, not {capacity}")
        self.capacity = capacity
        self._evict()

    @contextmanager
    def at_work(self) -> Iterator[None]:
        """Hold one of `workers` places while a model samples. Sampling is CPU-bound, so
        more at once than cores only queues inside NumPy, each with its model and buffers."""
        with self._work:
            yield

    def used(self, handle: ModelHandle) -> None:
        """`handle` was just used: most recent now; drop the oldest beyond capacity."""
        key = handle.directory.resolve()
        with self._lock:
            self._recent[key] = handle
            self._recent.move_to_end(key)
        self._evict()

    def loaded(self) -> int:
        """How many models are in memory now."""
        with self._lock:
            return sum(1 for h in self._recent.values() if h.in_memory)

    def _evict(self) -> None:
        with self._lock:
            extra = len(self._recent) - self.capacity
            victims = [self._recent.popitem(last=False)[1] for _ in range(max(0, extra))]
        for victim in victims:  # no cache lock held: a victim may be loading right now
            victim.drop()


MODELS = ModelCache()  # the process's cache; `bot run` sizes it from `models_in_memory`
