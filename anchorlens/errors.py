"""Errors a user can act on: each message names the problem and the fix."""

from __future__ import annotations


class AnchorlensError(Exception):
    """Base class. The CLI prints these as one line and exits non-zero, without a traceback."""


class UnknownTaskError(AnchorlensError, KeyError):
    """A task name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnknownModelError(AnchorlensError, ValueError):
    """A model that is neither an offline model, a local folder, a name TransformerLens knows nor a loaded model."""


class ModelLoadError(AnchorlensError, RuntimeError):
    """A known model that cannot be loaded here (its weight package missing, the hub unreachable, a broken folder)."""


class DataFileError(AnchorlensError, ValueError):
    """A data file is missing, empty or malformed."""


class EmptyClassError(AnchorlensError, ValueError):
    """A class has no examples where the sampler needs some."""


class TaskDefinitionError(AnchorlensError, ValueError):
    """A custom task's template or label words cannot be used."""


class LabelWordError(AnchorlensError, ValueError):
    """Label words that cannot be told apart by their first token."""


class PromptTooLongError(AnchorlensError, ValueError):
    """A prompt longer than the model's context (``max_length``)."""


class TokenizationError(AnchorlensError, ValueError):
    """Token boundaries do not line up with the prompt's parts."""


class HookError(AnchorlensError, RuntimeError):
    """The model's attention cannot be hooked, or a hook did not act."""


class InvalidConfigError(AnchorlensError, ValueError):
    """A setting is outside what the method allows (a count, seed or source name)."""


class DistributedRunError(AnchorlensError, RuntimeError):
    """A data-parallel run cannot start or its ranks disagree (launcher variables, a shared folder)."""


class UnsupportedModelError(InvalidConfigError):
    """The loaded model's class cannot run this step (e.g. a TransformerBridge where TransformerLens's own
    key/value cache is needed); the message names the model class to load instead."""
