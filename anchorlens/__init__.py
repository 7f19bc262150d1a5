"""anchorlens: label words as anchors -- information-flow analyses of in-context learning on TransformerLens."""

from anchorlens.errors import (
    AnchorlensError,
    DataFileError,
    EmptyClassError,
    HookError,
    LabelWordError,
    ModelLoadError,
    PromptTooLongError,
    TaskDefinitionError,
    TokenizationError,
    UnknownModelError,
    UnknownTaskError,
)
from anchorlens.hooks import (
    LabelAttentionRecorder,
    SaliencyRecorder,
    block_earlier_mask,
    frozen_parameters,
    hooked,
    isolation_hooks,
    reweight_hooks,
    verify_attention_hooks,
)
from anchorlens.models import DEFAULT_MODEL, OFFLINE_MODELS, load_hf_model, load_model, load_tokenizer
from anchorlens.prompts import (
    Prompt,
    PromptBatch,
    Role,
    build_prompt,
    iter_batches,
    label_logits,
    label_loss,
    label_tokens,
    make_batch,
    prompt_settings,
    target_logits,
    task_prompts,
)
from anchorlens.sampling import Example, sample_demonstrations, sample_test_set
from anchorlens.tasks import Task, get_task, list_tasks, load_split, register_task
from anchorlens.version import __version__
