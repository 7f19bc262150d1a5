"""The prompt object: text, token ids and every position an analysis needs, computed once while building.

A prompt is demonstrations then the query, joined by single newlines (SPEC §0). While the text is put
together the builder records which characters are demonstration text, template formatting, label words,
separating newlines and query; after one tokenization of the whole string (so token ids equal what the
model sees for that string) every token gets a role from the characters it covers. No analysis searches
strings for positions afterwards: they read them from the `Prompt`.

Batches are right-padded. With causal attention a token never sees later positions, so the padding after
a prompt changes nothing at positions up to its target, and position ids stay 0..n-1 as in a batch of one.
Left padding would shift rotary/learned position ids unless every model handled an attention mask the same.
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from anchorlens.errors import InvalidConfigError, LabelWordError, PromptTooLongError, TokenizationError
from anchorlens.model_classes import Model
from anchorlens.tasks import Source, Task, get_task

if TYPE_CHECKING:
    from anchorlens.sampling import Example


class Role(enum.IntEnum):
    """What a token is in the prompt. Ordered by precedence when one token covers characters of several."""

    TEXT = 0  # demonstration text
    QUERY_TEXT = 1  # the query's own text
    FORMAT = 2  # template words of a demonstration ("Review:", "\nSentiment:")
    QUERY_FORMAT = 3  # template words of the query, the target among them
    SEPARATOR = 4  # the newline joining two parts of the prompt
    LABEL_REST = 5  # later tokens of a multi-token label word
    LABEL = 6  # the first token of a demonstration's label word: an anchor
    BOS = 7


@dataclass(frozen=True)
class LabelTokens:
    """First token id of each class's label word (class-id order), checked for collisions."""

    words: tuple[str, ...]
    token_ids: tuple[int, ...]
    #: The full tokenization of each word, to report multi-token words.
    pieces: tuple[tuple[str, ...], ...]

    @property
    def multi_token_words(self) -> dict[str, tuple[str, ...]]:
        return {word: piece for word, piece in zip(self.words, self.pieces) if len(piece) > 1}


_WARNED_MULTI_TOKEN: set[tuple[str, str, tuple[str, ...]]] = set()


def label_tokens(tokenizer, task: Task | str) -> LabelTokens:
    """Tokenize each label word alone; warn for words of several tokens; refuse shared first tokens.

    Args:
        tokenizer (transformers.PreTrainedTokenizerBase): a Hugging Face tokenizer (``model.tokenizer``).
        task: a task name or `Task` (its label words, in class-id order).

    Returns:
        `LabelTokens`: the words, the first token id of each (the label token the analyses read) and each word's
        full tokenization. Two words sharing a first token are a `LabelWordError`.

    Examples:
        >>> import anchorlens as al
        >>> al.label_tokens(al.load_tokenizer("smollm2-135m"), "sst2").token_ids
        (26990, 20085)
    """
    task = get_task(task)
    token_ids, pieces = [], []
    for word in task.label_words:
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if not ids:
            raise LabelWordError(
                f"label word {word!r} of task {task.name!r} tokenizes to nothing; use a non-empty word"
            )
        token_ids.append(ids[0])
        pieces.append(tuple(tokenizer.convert_ids_to_tokens(ids)))
    result = LabelTokens(tuple(task.label_words), tuple(token_ids), tuple(pieces))
    for word, piece in result.multi_token_words.items():
        if (task.name, word, piece) in _WARNED_MULTI_TOKEN:
            continue  # once per process: long runs build labels for every seed
        _WARNED_MULTI_TOKEN.add((task.name, word, piece))
        warnings.warn(
            f"label word {word!r} of task {task.name!r} is {len(piece)} tokens {list(piece)}; anchorlens uses "
            f"its first token {piece[0]!r} as the label token (as the paper does)",
            stacklevel=2,
        )
    first_seen: dict[int, str] = {}
    for word, token_id, piece in zip(task.label_words, token_ids, pieces):
        if token_id in first_seen:
            raise LabelWordError(
                f"label words {first_seen[token_id]!r} and {word!r} of task {task.name!r} share their first token "
                f"{piece[0]!r}, so their predictions cannot be told apart; choose label words whose first tokens "
                "differ"
            )
        first_seen[token_id] = word
    return result


@dataclass(frozen=True)
class PromptParts:
    """What a prompt was built from, so that it can be built again another way (compression's Text_anchor
    prompt drops the demonstrations' text): the task (template and label words), the demonstrations as
    (text, class id) pairs in prompt order, the query's text and the prompt settings."""

    task: Task
    demonstrations: tuple[tuple[str, int], ...]
    query_text: str
    prepend_bos: bool
    max_length: int | None = None


@dataclass(frozen=True)
class Prompt:
    """One ICL prompt with its tracked positions (0-indexed, BOS included when the model uses one)."""

    task_name: str
    text: str
    token_ids: tuple[int, ...]
    roles: tuple[Role, ...]
    #: Which demonstration (0-based, prompt order) each token belongs to; -1 for the query and BOS.
    demonstration_of_token: tuple[int, ...]
    #: Class id of each demonstration, in prompt order.
    demonstration_labels: tuple[int, ...]
    #: Position of each demonstration's label token (p), in prompt order.
    demonstration_label_positions: tuple[int, ...]
    #: Position of the target (q): the last token of the query, the ':' that ends it.
    target_position: int
    #: First-token id of each class's label word, class-id order.
    label_token_ids: tuple[int, ...]
    #: Gold class of the query, or None when unknown.
    query_label: int | None = None
    #: Row index of the query in its split (the test row), or None for a prompt not drawn from a task's data.
    #: Random controls are keyed by it, so they do not depend on how prompts are batched.
    example_index: int | None = None
    #: What `build_prompt` built it from (None for a prompt made another way); not part of equality.
    parts: PromptParts | None = field(default=None, compare=False, repr=False)
    #: Position of the query's first token, None for a prompt without query tokens: found once from the roles
    #: when the prompt is made (read it as `demonstration_length`); not an argument, not part of equality.
    query_start: int | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (len(self.token_ids) == len(self.roles) == len(self.demonstration_of_token)):
            raise ValueError("token_ids, roles and demonstration_of_token must have one entry per token")
        if self.target_position != len(self.token_ids) - 1:
            raise ValueError("the target must be the last token of the prompt")
        query = (position for position, role in enumerate(self.roles) if role in (Role.QUERY_FORMAT, Role.QUERY_TEXT))
        object.__setattr__(self, "query_start", next(query, None))  # frozen: set once, here

    @property
    def demonstration_length(self) -> int:
        """Tokens before the query: the demonstrations and the newline after the last one (BOS included). What
        a key/value cache of the demonstrations holds, and where the query starts."""
        if self.query_start is None:
            raise InvalidConfigError(
                "the prompt has no query tokens; build it with anchorlens.build_prompt or task_prompts, which mark "
                "the query"
            )
        return self.query_start

    @property
    def length(self) -> int:
        return len(self.token_ids)

    @property
    def num_classes(self) -> int:
        return len(self.label_token_ids)

    @cached_property
    def label_positions(self) -> tuple[tuple[int, ...], ...]:
        """Label-token positions grouped by class (class-id order); a class without demonstration is empty."""
        grouped: list[list[int]] = [[] for _ in range(self.num_classes)]
        for label, position in zip(self.demonstration_labels, self.demonstration_label_positions):
            grouped[label].append(position)
        return tuple(tuple(positions) for positions in grouped)

    def positions_with(self, *roles: Role) -> tuple[int, ...]:
        wanted = set(roles)
        return tuple(position for position, role in enumerate(self.roles) if role in wanted)

    @property
    def text_positions(self) -> tuple[int, ...]:
        """w of the paper: every position before the target that is not a label token."""
        anchors = set(self.demonstration_label_positions)
        return tuple(position for position in range(self.target_position) if position not in anchors)

    @property
    def formatting_positions(self) -> tuple[int, ...]:
        """Template words and separating newlines of the demonstrations (BOS included): what compression keeps
        besides the label words."""
        return self.positions_with(Role.BOS, Role.FORMAT, Role.SEPARATOR, Role.LABEL_REST)

    @property
    def demonstration_text_positions(self) -> tuple[int, ...]:
        return self.positions_with(Role.TEXT)

    @cached_property
    def text_positions_by_demonstration(self) -> tuple[tuple[int, ...], ...]:
        """Each demonstration's text positions (prompt order), in demonstration order: what a random stand-in
        for its label word is drawn from."""
        grouped: list[list[int]] = [[] for _ in self.demonstration_labels]
        for position in self.demonstration_text_positions:
            grouped[self.demonstration_of_token[position]].append(position)
        return tuple(tuple(positions) for positions in grouped)

    def tokens(self, tokenizer) -> list[str]:
        return tokenizer.convert_ids_to_tokens(list(self.token_ids))

    def to_dict(self, tokenizer=None, class_names: Sequence[str] | None = None) -> dict:
        """A JSON-ready view: token strings (when a tokenizer is given), roles and positions."""
        names = list(class_names) if class_names is not None else [str(c) for c in range(self.num_classes)]
        out = {
            "task": self.task_name,
            "text": self.text,
            "token_ids": list(self.token_ids),
            "roles": [role.name.lower() for role in self.roles],
            "label_positions": {names[c]: list(p) for c, p in enumerate(self.label_positions)},
            "demonstration_labels": [names[c] for c in self.demonstration_labels],
            "target_position": self.target_position,
            "label_token_ids": dict(zip(names, self.label_token_ids)),
            "text_positions": list(self.text_positions),
            "formatting_positions": list(self.formatting_positions),
            "query_label": None if self.query_label is None else names[self.query_label],
            "example_index": self.example_index,
        }
        if tokenizer is not None:
            out["tokens"] = self.tokens(tokenizer)
            out["label_tokens"] = dict(zip(names, tokenizer.convert_ids_to_tokens(list(self.label_token_ids))))
        return out


@dataclass
class _Segment:
    text: str
    role: Role
    demonstration: int  # -1 for the query and separators outside demonstrations


def _segments(task: Task, demonstrations: Sequence[tuple[str, int]], query_text: str) -> list[_Segment]:
    prefix, middle = task.template_parts()[:2]
    segments: list[_Segment] = []
    for index, (text, label) in enumerate(demonstrations):
        if not 0 <= label < task.num_classes:
            raise LabelWordError(
                f"demonstration {index} has label {label}, outside 0..{task.num_classes - 1}; give a class id of "
                f"task {task.name!r} or its label word"
            )
        segments += [
            _Segment(prefix, Role.FORMAT, index),
            _Segment(text, Role.TEXT, index),
            _Segment(middle, Role.FORMAT, index),
            _Segment(task.label_words[label], Role.LABEL, index),
            _Segment("\n", Role.SEPARATOR, -1),
        ]
    segments += [
        _Segment(prefix, Role.QUERY_FORMAT, -1),
        _Segment(query_text, Role.QUERY_TEXT, -1),
        _Segment(middle, Role.QUERY_FORMAT, -1),
    ]
    return [segment for segment in segments if segment.text]


_TEXT_ROLES = (Role.TEXT, Role.QUERY_TEXT)


def _token_role(char_roles: Sequence[Role]) -> Role:
    """The role of a token from the roles of the characters it covers.

    A token that covers any character of a demonstration's (or the query's) text is text: the template's
    trailing space merges into the first word (``"Review: it"`` gives ``" it"``), and that word is content
    the paper's compression drops (SPEC §8). Otherwise the highest role wins (a ``"\n"`` that merges with
    the next template word is a separator).
    """
    text_roles = [role for role in char_roles if role in _TEXT_ROLES]
    if text_roles and Role.LABEL not in char_roles:
        return max(text_roles)
    return max(char_roles)


#: The name of the task `build_prompt` makes from a template and label words given without a task.
CUSTOM_TASK_NAME = "custom"


def tokenizer_and_settings(
    source: Any, prepend_bos: bool | None, max_length: int | None, *, what: str
) -> tuple[Any, bool, int | None]:
    """(tokenizer, prepend_bos, max_length) from a loaded model or a tokenizer.

    A model (anything with ``.cfg`` and ``.tokenizer``, as TransformerLens models have) gives its tokenizer, its
    BOS setting and its context length (`prompt_settings`); values passed explicitly win. A tokenizer needs
    `prepend_bos` passed. `what` names the calling function in error messages."""
    if hasattr(source, "cfg") and hasattr(source, "tokenizer"):
        if source.tokenizer is None:
            raise InvalidConfigError(
                f"{what} takes its tokenizer from the model, and this model has none; attach one with "
                "model.set_tokenizer(tokenizer) or load the model with anchorlens.load_model(name)"
            )
        settings = prompt_settings(source)
        return (
            source.tokenizer,
            settings["prepend_bos"] if prepend_bos is None else bool(prepend_bos),
            settings["max_length"] if max_length is None else max_length,
        )
    if not (callable(source) and hasattr(source, "convert_ids_to_tokens")):
        raise InvalidConfigError(
            f"{what} takes a loaded model (anchorlens.load_model) or a Hugging Face tokenizer first, got a "
            f"{type(source).__name__}"
        )
    if prepend_bos is None:
        raise InvalidConfigError(
            f"{what}(tokenizer, ...) needs prepend_bos=True or False (whether the model expects a BOS token); pass "
            f"the model instead of its tokenizer to take it from the model, or **prompt_settings(model)"
        )
    return source, bool(prepend_bos), max_length


def _demonstration_pairs(demonstrations: Sequence) -> list[tuple[str, int | str]]:
    """(text, label) pairs from pairs or from objects with ``.text``/``.label`` (a sampled `Example`)."""
    if isinstance(demonstrations, (str, bytes)):
        raise InvalidConfigError(
            "demonstrations must be a list of (text, label) pairs, got a string; e.g. "
            "demonstrations=[('a joy to watch', ' Positive'), ('dull and slow', ' Negative')]"
        )
    pairs = []
    for index, demonstration in enumerate(demonstrations):
        if hasattr(demonstration, "text") and hasattr(demonstration, "label"):
            pairs.append((demonstration.text, demonstration.label))
            continue
        if (
            isinstance(demonstration, (str, bytes))
            or not isinstance(demonstration, Sequence)
            or len(demonstration) != 2
        ):
            raise InvalidConfigError(
                f"demonstration {index} is {demonstration!r}, not a (text, label) pair; give each demonstration as "
                "(text, label word) or (text, class id)"
            )
        pairs.append((demonstration[0], demonstration[1]))
    for index, (text, label) in enumerate(pairs):
        if not isinstance(text, str):
            raise InvalidConfigError(f"demonstration {index} has text {text!r}; the text must be a string")
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise InvalidConfigError(
                f"demonstration {index} has label {label!r}; give a label word (a string) or a class id (an int)"
            )
    return pairs


def _class_id(label: int | str, task: Task, what: str) -> int:
    """The class id of a label given as a class id or as a label word of `task`."""
    if not isinstance(label, str):
        return int(label)
    if label in task.label_words:
        return task.label_words.index(label)
    near = [word for word in task.label_words if word.strip() == label.strip()]
    hint = f" (did you mean {near[0]!r}? label words carry their leading space)" if near else ""
    raise LabelWordError(
        f"{what} has label word {label!r}, which is not one of the label words {list(task.label_words)}{hint}; "
        "give one of them, or pass every class's label word with label_words=[...]"
    )


def _custom_task(template: str, label_words: Sequence[str] | None, labels_given: Sequence[int | str]) -> Task:
    """The task of a prompt written from a template and label words rather than a registered task."""
    if label_words is None:
        if any(not isinstance(label, str) for label in labels_given):
            raise LabelWordError(
                "a demonstration is labelled with a class id, but without a task there is no label word to look it "
                "up in; label demonstrations with their label words, or pass label_words=[...] in class-id order"
            )
        # First appearance in the prompt gives the class order (every label is a word here: checked above).
        label_words = list(dict.fromkeys(label for label in labels_given if isinstance(label, str)))
        if len(label_words) < 2:
            raise LabelWordError(
                f"the demonstrations use {len(label_words)} label word(s) {label_words}, and a classification "
                "prompt needs at least 2; pass every class's label word with label_words=[' Negative', ' Positive']"
            )
    words = tuple(label_words)
    if not all(isinstance(word, str) for word in words):
        raise LabelWordError(f"label_words must be strings (each class's label word), got {list(words)!r}")
    names = tuple(word.strip() for word in words)
    return Task(
        name=CUSTOM_TASK_NAME,
        template=template,
        label_words=words,
        class_names=names if len(set(names)) == len(names) and all(names) else words,
    )


def _renamed(value: Any, old_value: Any, old: str, new: str, function: str) -> Any:
    """The value of a parameter given by its new name or, with a `FutureWarning`, by its old one."""
    if old_value is None:
        return value
    if value is not None and value is not old_value and value != old_value:
        raise InvalidConfigError(
            f"{function} got both {new}= and {old}= (its old name) with different values; give {new}="
        )
    warnings.warn(f"{function}({old}=...) is deprecated: the parameter is now {new}=", FutureWarning, stacklevel=3)
    return old_value


def build_prompt(
    model_or_tokenizer: Any = None,
    task: Task | str | None = None,
    demonstrations: Sequence = (),
    query: str | None = None,
    query_label: int | str | None = None,
    *,
    template: str | None = None,
    label_words: Sequence[str] | None = None,
    prepend_bos: bool | None = None,
    max_length: int | None = None,
    labels: LabelTokens | None = None,
    example_index: int | None = None,
    tokenizer: Any = None,
    query_text: str | None = None,
) -> Prompt:
    """Build a prompt and its positions from one tokenization of the whole text.

    Two ways to call it. From your own text, with a loaded model::

        build_prompt(model, demonstrations=[("a joy to watch", " Positive"), ("dull and slow", " Negative")],
                     query="one of the warmest films of the year", query_label=" Positive",
                     template="Review: {text}\\nSentiment:{label}")

    or with a registered task (its template and label words), the form the experiments use::

        build_prompt(model, "sst2", [(text, class_id), ...], query, query_label)

    Args:
        model_or_tokenizer: a loaded model (its tokenizer, BOS setting and context length are used) or a Hugging
            Face tokenizer (then `prepend_bos` is required, e.g. ``**prompt_settings(model)``).
        task: a task name or `Task`; None with `template` (and label words) of your own.
        demonstrations: (text, label) pairs in prompt order (anything with ``.text``/``.label`` works too); a
            label is a label word (``" Positive"``) or a class id.
        query: the query's text.
        query_label: the query's gold class as a label word or class id; None when unknown (saliency and
            re-weighting training need it).
        template: ``"...{text}...{label}"`` with ``{label}`` last (`Task`); overrides the task's template.
        label_words: every class's label word in class-id order, without a task. Default: the demonstrations'
            label words in order of first appearance (build prompts you analyse together with the same
            `label_words`, so that their class ids agree).
        prepend_bos: whether to put the tokenizer's BOS token first; default from the model.
        max_length: longest prompt allowed in tokens (`PromptTooLongError` beyond); default the model's context.
        labels: a `label_tokens` result, to reuse the label-token check across many prompts.
        example_index: row of the query in its split, when it comes from a task's data.
        tokenizer: the old name of `model_or_tokenizer` (deprecated: a `FutureWarning`).
        query_text: the old name of `query` (deprecated: a `FutureWarning`).

    Returns:
        A `Prompt`: token ids, each token's `Role`, the label positions p (``label_positions`` by class) and the
        target q (the last token), with ``parts`` recording what it was built from.

    A label word of several tokens is used through its first token (with a warning); label words sharing a
    first token are a `LabelWordError`.

    Examples:
        >>> import anchorlens as al
        >>> tokenizer = al.load_tokenizer("smollm2-135m")
        >>> demonstrations, _ = al.sample_demonstrations("sst2", seed=42)
        >>> prompt = al.build_prompt(tokenizer, "sst2", demonstrations, "a gem of a film", prepend_bos=False)
        >>> prompt.text.endswith("Review: a gem of a film" + chr(10) + "Sentiment:")
        True
        >>> prompt.demonstration_label_positions, prompt.target_position
        ((40, 55), 67)
    """
    model_or_tokenizer = _renamed(model_or_tokenizer, tokenizer, "tokenizer", "model_or_tokenizer", "build_prompt")
    query_text = _renamed(query, query_text, "query_text", "query", "build_prompt")
    if model_or_tokenizer is None:
        raise InvalidConfigError("build_prompt needs a loaded model or its tokenizer first: build_prompt(model, ...)")
    tokenizer, prepend_bos, max_length = tokenizer_and_settings(
        model_or_tokenizer, prepend_bos, max_length, what="build_prompt"
    )
    if not isinstance(query_text, str):
        raise InvalidConfigError(f"build_prompt needs the query's text as a string (query='...'), got {query_text!r}")
    given = _demonstration_pairs(demonstrations)
    if task is None:
        if template is None:
            raise InvalidConfigError(
                "build_prompt needs a task (e.g. 'sst2') or a template of your own, e.g. "
                "template='Review: {text}\\nSentiment:{label}' with label words in the demonstrations"
            )
        extra: list[int | str] = [query_label] if isinstance(query_label, str) else []
        task = _custom_task(template, label_words, [label for _, label in given] + extra)
    else:
        task = get_task(task)
        if label_words is not None and tuple(label_words) != task.label_words:
            raise LabelWordError(
                f"label_words {list(label_words)} differ from those of task {task.name!r}, "
                f"{list(task.label_words)}; leave label_words out to use the task's, or give template= and "
                "label_words= without a task"
            )
        if template is not None and template != task.template:
            task = dataclasses.replace(task, template=template)
    pairs = [(text, _class_id(label, task, f"demonstration {index}")) for index, (text, label) in enumerate(given)]
    if query_label is not None:
        query_label = _class_id(query_label, task, "the query")
        if not 0 <= query_label < task.num_classes:
            raise InvalidConfigError(
                f"query_label {query_label} is outside the class ids 0..{task.num_classes - 1} of task {task.name!r}"
            )
    labels = labels if labels is not None else label_tokens(tokenizer, task)
    segments = _segments(task, pairs, query_text)
    text = "".join(segment.text for segment in segments)
    char_role = [Role.TEXT] * len(text)
    char_demo = [-1] * len(text)
    label_spans: list[tuple[int, int, int]] = []  # (char start, char end, class id), prompt order
    cursor = 0
    for segment in segments:
        end = cursor + len(segment.text)
        char_role[cursor:end] = [segment.role] * len(segment.text)
        char_demo[cursor:end] = [segment.demonstration] * len(segment.text)
        if segment.role == Role.LABEL:
            label_spans.append((cursor, end, pairs[segment.demonstration][1]))
        cursor = end

    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding.input_ids)
    offsets = [(start, max(end, start + 1)) for start, end in encoding.offset_mapping]
    roles = [_token_role(char_role[start:end]) for start, end in offsets]
    token_demo = [max(char_demo[start:end]) for start, end in offsets]

    demonstration_labels, demonstration_label_positions = [], []
    for span_start, span_end, label in label_spans:
        covering = [i for i, (start, end) in enumerate(offsets) if start < span_end and end > span_start]
        first = covering[0] if covering else None
        if first is None or ids[first] != labels.token_ids[label] or offsets[first][0] < span_start:
            found = "nothing" if first is None else repr(tokenizer.convert_ids_to_tokens([ids[first]])[0])
            raise TokenizationError(
                f"in task {task.name!r} the label word {task.label_words[label]!r} does not start a token of its own "
                f"in the prompt (found {found}, expected {labels.pieces[label][0]!r}): the template text before "
                "'{label}' merges with it. End the template part before '{label}' with a character that ends a "
                "token (such as ':') and start label words with a space"
            )
        for continuation in covering[1:]:
            roles[continuation] = Role.LABEL_REST
        demonstration_labels.append(label)
        demonstration_label_positions.append(first)

    if prepend_bos:
        if tokenizer.bos_token_id is None:
            raise TokenizationError(
                "prepend_bos=True but the tokenizer has no BOS token; load the model with prepend_bos=False"
            )
        ids = [tokenizer.bos_token_id] + ids
        roles = [Role.BOS] + roles
        token_demo = [-1] + token_demo
        demonstration_label_positions = [p + 1 for p in demonstration_label_positions]

    if not ids or encoding.offset_mapping[-1][1] != len(text):
        raise TokenizationError("the last token does not end the prompt text; the query template must end the prompt")
    if max_length is not None and len(ids) > max_length:
        raise PromptTooLongError(
            f"a {task.name!r} prompt is {len(ids)} tokens, longer than the model's context of {max_length}; use "
            "fewer demonstrations per class, shorter texts, or a model with a longer context"
        )
    return Prompt(
        task_name=task.name,
        text=text,
        token_ids=tuple(ids),
        roles=tuple(roles),
        demonstration_of_token=tuple(token_demo),
        demonstration_labels=tuple(demonstration_labels),
        demonstration_label_positions=tuple(demonstration_label_positions),
        target_position=len(ids) - 1,
        label_token_ids=labels.token_ids,
        query_label=query_label,
        example_index=example_index,
        parts=PromptParts(task, tuple(pairs), query_text, prepend_bos, max_length),
    )


@dataclass(frozen=True)
class PromptBatch:
    """Right-padded prompts as tensors; positions stay those of each prompt alone."""

    prompts: tuple[Prompt, ...]
    tokens: Int[Tensor, "batch seq"]
    lengths: Int[Tensor, " batch"]
    target_positions: Int[Tensor, " batch"]
    label_token_ids: Int[Tensor, " class"]
    #: Gold class per prompt, -1 where unknown.
    gold: Int[Tensor, " batch"]
    #: True at each class's label positions: [batch, class, seq].
    label_mask: Bool[Tensor, "batch class seq"] = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.prompts)

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    def to(self, device: torch.device | str) -> PromptBatch:
        return PromptBatch(
            prompts=self.prompts,
            tokens=self.tokens.to(device),
            lengths=self.lengths.to(device),
            target_positions=self.target_positions.to(device),
            label_token_ids=self.label_token_ids.to(device),
            gold=self.gold.to(device),
            label_mask=self.label_mask.to(device),
        )

    def position_mask(self, positions: Sequence[Sequence[int]]) -> Bool[Tensor, "batch seq"]:
        """A [batch, seq] mask that is True at the given positions of each prompt."""
        mask = torch.zeros(self.tokens.shape, dtype=torch.bool, device=self.tokens.device)
        for row, row_positions in enumerate(positions):
            if len(row_positions):
                mask[row, torch.as_tensor(list(row_positions), dtype=torch.long)] = True
        return mask


#: What the analyses of any prompts take: a list of prompts, one prompt, or a batch (its prompts).
Prompts = Sequence[Prompt] | PromptBatch | Prompt


def make_batch(
    prompts: Sequence[Prompt], *, pad_token_id: int = 0, device: torch.device | str | None = None
) -> PromptBatch:
    """Stack prompts of one task into right-padded tensors.

    Args:
        prompts: prompts sharing their label tokens (one task, one tokenizer).
        pad_token_id: the token id padding fills with (never attended to from a target: padding is on the right).
        device: where to put the tensors (default the CPU).

    Returns:
        `PromptBatch`: ``tokens`` [batch, seq], ``lengths`` [batch], ``target_positions`` [batch],
        ``label_token_ids`` [class], ``gold`` [batch] (-1 where unknown) and ``label_mask`` [batch, class, seq]
        (True at each class's label positions), with the prompts themselves.

    Examples:
        >>> import anchorlens as al
        >>> _, prompts = al.task_prompts(al.load_tokenizer("smollm2-135m"), "sst2", 42, n_test=2, prepend_bos=False)
        >>> batch = al.make_batch(prompts)
        >>> batch.size, tuple(batch.tokens.shape) == (2, batch.seq_len)
        (2, True)
    """
    if not prompts:
        raise InvalidConfigError(
            "make_batch needs at least one prompt; build them with anchorlens.build_prompt or task_prompts"
        )
    label_ids = prompts[0].label_token_ids
    if any(p.label_token_ids != label_ids for p in prompts):
        raise InvalidConfigError(
            "all prompts in a batch must share their label tokens (one task, one tokenizer); batch the prompts "
            "of one task together"
        )
    seq_len = max(p.length for p in prompts)
    tokens = torch.full((len(prompts), seq_len), pad_token_id, dtype=torch.long)
    label_mask = torch.zeros((len(prompts), len(label_ids), seq_len), dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        tokens[row, : prompt.length] = torch.tensor(prompt.token_ids)
        for label, position in zip(prompt.demonstration_labels, prompt.demonstration_label_positions):
            label_mask[row, label, position] = True
    batch = PromptBatch(
        prompts=tuple(prompts),
        tokens=tokens,
        lengths=torch.tensor([p.length for p in prompts]),
        target_positions=torch.tensor([p.target_position for p in prompts]),
        label_token_ids=torch.tensor(label_ids),
        gold=torch.tensor([-1 if p.query_label is None else p.query_label for p in prompts]),
        label_mask=label_mask,
    )
    return batch.to(device) if device is not None else batch


def iter_batches(prompts: Sequence[Prompt], batch_size: int, **kwargs) -> Iterator[PromptBatch]:
    """Batches in order. Prompts are not re-sorted, so results line up with the input order.

    Args:
        prompts: prompts sharing their label tokens.
        batch_size: prompts per batch (the last may hold fewer).
        **kwargs (Any): ``pad_token_id`` and ``device``, passed to `make_batch`.

    Yields:
        One `PromptBatch` per `batch_size` consecutive prompts.

    Examples:
        >>> import anchorlens as al
        >>> _, prompts = al.task_prompts(al.load_tokenizer("smollm2-135m"), "sst2", 42, n_test=3, prepend_bos=False)
        >>> [batch.size for batch in al.iter_batches(prompts, 2)]
        [2, 1]
    """
    if batch_size < 1:
        raise InvalidConfigError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(prompts), batch_size):
        yield make_batch(prompts[start : start + batch_size], **kwargs)


def target_logits(logits: Float[Tensor, "batch seq vocab"], batch: PromptBatch) -> Float[Tensor, "batch vocab"]:
    """Full-vocabulary logits at each prompt's target position.

    Args:
        logits: the model's logits at every position, [batch, seq, vocab].
        batch: the prompts that ran (their target positions).

    Returns:
        [batch, vocab]: the row of each prompt's target q.

    Examples:
        >>> import torch
        >>> import anchorlens as al
        >>> _, prompts = al.task_prompts(al.load_tokenizer("smollm2-135m"), "sst2", 42, n_test=2, prepend_bos=False)
        >>> batch = al.make_batch(prompts)
        >>> logits = torch.randn(batch.size, batch.seq_len, 49152)
        >>> al.target_logits(logits, batch).shape
        torch.Size([2, 49152])
    """
    rows = torch.arange(batch.size, device=logits.device)
    return logits[rows, batch.target_positions.to(logits.device)]


def label_logits(
    logits: Float[Tensor, "batch seq vocab"] | Float[Tensor, "batch vocab"], batch: PromptBatch
) -> Float[Tensor, "batch class"]:
    """The C label-token logits at the target: what predictions and losses are computed over (SPEC §0).

    Takes full logits, or logits already taken at the targets (`anchorlens.forward.run_to_target`).

    Args:
        logits: [batch, seq, vocab] at every position, or [batch, vocab] at the targets.
        batch: the prompts that ran (their targets and label tokens).

    Returns:
        [batch, class]: column c is the logit of class c's label token; ``argmax(-1)`` is the prediction.

    Examples:
        >>> import torch
        >>> import anchorlens as al
        >>> _, prompts = al.task_prompts(al.load_tokenizer("smollm2-135m"), "sst2", 42, n_test=1, prepend_bos=False)
        >>> batch = al.make_batch(prompts)
        >>> logits = torch.zeros(1, batch.seq_len, 49152)
        >>> logits[0, prompts[0].target_position, 20085] = 5.0  # " Positive" at the target
        >>> al.label_logits(logits, batch)
        tensor([[0., 5.]])
    """
    at_target = target_logits(logits, batch) if logits.ndim == 3 else logits
    return at_target[:, batch.label_token_ids.to(logits.device)]


def label_loss(
    logits: Float[Tensor, "batch seq vocab"] | Float[Tensor, "batch vocab"], batch: PromptBatch, reduction: str = "sum"
) -> Tensor:
    """Cross-entropy over the label logits against the gold class.

    Args:
        logits: [batch, seq, vocab] at every position, or [batch, vocab] at the targets.
        batch: the prompts that ran, each with a gold label (``query_label``).
        reduction: ``"sum"`` (each prompt's gradient is that of its own loss, as with batch size 1), ``"mean"``
            or ``"none"``, as ``torch.nn.functional.cross_entropy``.

    Returns:
        The loss: a scalar, or [batch] with ``reduction="none"``.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> batch = al.make_batch(al.task_prompts(model, "sst2", 42, n_test=2)[1])
        >>> loss = al.label_loss(al.run_to_target(model, batch), batch, reduction="none")
        >>> tuple(loss.shape), bool((loss > 0).all())
        ((2,), True)
    """
    if bool((batch.gold < 0).any()):
        raise InvalidConfigError(
            "label_loss needs a gold label for every prompt in the batch; build the prompts with "
            "build_prompt(..., query_label=<label word or class id>)"
        )
    return torch.nn.functional.cross_entropy(
        label_logits(logits, batch), batch.gold.to(logits.device), reduction=reduction
    )


def prompt_settings(model: Model) -> dict:
    """What the prompt builder needs from a loaded model: its BOS setting and context length.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.

    Returns:
        ``{"prepend_bos": ..., "max_length": ...}``: keyword arguments for `build_prompt` and `task_prompts`
        given a tokenizer rather than the model.

    Examples:
        >>> import anchorlens as al
        >>> al.prompt_settings(al.random_model())
        {'prepend_bos': False, 'max_length': 512}
    """
    return {"prepend_bos": bool(model.cfg.default_prepend_bos), "max_length": int(model.cfg.n_ctx)}


def task_prompts(
    model_or_tokenizer: Any,
    task: Task | str,
    seed: int,
    *,
    prepend_bos: bool | None = None,
    max_length: int | None = None,
    n_test: int | None = None,
    shots_per_class: int = 1,
    source: Source = "local",
) -> tuple[list[Example], list[Prompt]]:
    """The seed's fixed demonstrations and one prompt per seeded test input (SPEC §0 sampling).

    Args:
        model_or_tokenizer: a loaded model (its tokenizer, BOS setting and context length are used: the short
            form, ``task_prompts(model, "sst2", 42)``) or a Hugging Face tokenizer (then `prepend_bos` is
            required, e.g. ``**prompt_settings(model)``).
        task: a task name or `Task`.
        seed: the seed of the demonstrations and of the test-set shuffle.
        prepend_bos: whether to put the tokenizer's BOS token first; default from the model.
        max_length: longest prompt allowed in tokens; default the model's context.
        n_test: test inputs (default all, at most the task's ``max_test``).
        shots_per_class: demonstrations per class.
        source: ``"local"`` (the packaged data) or ``"hub"``.

    Returns:
        ``(demonstrations, prompts)``: the seed's demonstrations (`Example`s) and one `Prompt` per test input,
        prompt i's query being test input i of the seeded shuffle (its ``example_index`` the test row).

    Examples:
        >>> import anchorlens as al
        >>> tokenizer = al.load_tokenizer("smollm2-135m")
        >>> examples, prompts = al.task_prompts(tokenizer, "sst2", 42, n_test=2, prepend_bos=False)
        >>> len(prompts), prompts[0].num_classes
        (2, 2)
    """
    from anchorlens.sampling import sample_demonstrations, sample_test_set

    tokenizer, prepend_bos, max_length = tokenizer_and_settings(
        model_or_tokenizer, prepend_bos, max_length, what="task_prompts"
    )
    task = get_task(task)
    demonstrations, _ = sample_demonstrations(task, seed, shots_per_class=shots_per_class, source=source)
    labels = label_tokens(tokenizer, task)
    prompts = [
        build_prompt(
            tokenizer,
            task,
            demonstrations,
            example.text,
            example.label,
            prepend_bos=prepend_bos,
            max_length=max_length,
            labels=labels,
            example_index=example.index,
        )
        for example in sample_test_set(task, seed, n_test=n_test, source=source)
    ]
    return demonstrations, prompts
