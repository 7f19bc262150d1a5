"""Model loading: offline models against their HF originals, the weight cache, errors, value biases."""

from __future__ import annotations

import errno
import json
import os
import time
import warnings

import pytest

from anchorlens import models
from anchorlens.errors import InvalidConfigError, ModelLoadError

# ------------------------------------------------------------------ the cache, on small folders of its own


def _fake_folder(files: dict[str, bytes]):
    """A `fill` for `_write_folder_atomically` writing these files (stands in for a GGUF conversion)."""

    def fill(staging):
        for name, data in files.items():
            (staging / name).write_bytes(data)
        return {"model": "fake"}

    return fill


FAKE_FILES = {"config.json": b'{"num_hidden_layers": 30}', models.WEIGHTS_NAME: b"\x01" * 4096, "tokenizer.json": b"{}"}


def test_every_cached_file_is_in_the_manifest_and_checked(tmp_path):
    folder = tmp_path / "hf"
    models._write_folder_atomically(folder, _fake_folder(FAKE_FILES))
    manifest = json.loads((folder / models.MANIFEST_NAME).read_text())
    assert sorted(manifest["sha256"]) == sorted(FAKE_FILES)
    assert models.cache_problem(folder) is None

    (folder / "config.json").write_bytes(b'{"num_hidden_layers": 20}')
    assert models.cache_problem(folder) == "config.json does not match its recorded sha256 (edited or cut)"
    assert models.cache_problem(folder, check_hashes=False) is None  # listings do not hash
    (folder / "config.json").write_bytes(FAKE_FILES["config.json"])
    assert models.cache_problem(folder) is None

    (folder / "generation_config.json").write_text("{}")
    assert models.cache_problem(folder, check_hashes=False) == "generation_config.json is not in its manifest"
    (folder / "generation_config.json").unlink()
    (folder / "tokenizer.json").unlink()
    assert models.cache_problem(folder) == "tokenizer.json is missing"
    os.symlink(tmp_path / "elsewhere.json", folder / "tokenizer.json")
    assert models.cache_problem(folder) == "tokenizer.json is not a regular file"

    manifest["format_version"] = 1
    (folder / models.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert "cache format 1" in models.cache_problem(folder)
    (folder / models.MANIFEST_NAME).write_text("{not json")
    assert "manifest" in models.cache_problem(folder)
    assert models.cache_problem(tmp_path / "nothing-here") == "it does not exist"


def test_a_damaged_cache_is_rebuilt_with_a_warning_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    builds = []

    def fake_build(spec, folder):
        builds.append(spec.name)
        models._write_folder_atomically(folder, _fake_folder(FAKE_FILES))

    monkeypatch.setattr(models, "_build_converted_dir", fake_build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the first build of a missing folder warns about nothing
        folder = models.converted_dir("smollm2-135m")
    assert builds == ["smollm2-135m"] and models.converted_dir("smollm2-135m") == folder and len(builds) == 1
    (folder / "config.json").write_bytes(b'{"num_hidden_layers": 20}')
    with pytest.warns(
        models.CacheRebuildWarning, match=r"smollm2-135m/hf failed its check: config\.json does not match"
    ):
        models.converted_dir("smollm2-135m")
    assert len(builds) == 2 and (folder / "config.json").read_bytes() == FAKE_FILES["config.json"]


def test_large_files_are_hashed_once_per_process_until_they_change(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_SETTLED_NS", 0)  # remember files written just now (the test's own)
    monkeypatch.setattr(models, "_VERIFIED_HASHES", {})
    hashed = []
    real_sha256 = models.file_sha256
    monkeypatch.setattr(models, "file_sha256", lambda path: hashed.append(path.name) or real_sha256(path))
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    first = models._sha256_once(path)
    assert models._sha256_once(path) == first and hashed == ["weights.bin"]
    time.sleep(0.05)  # past the file system's clock tick, so the edit gets a new ctime
    with path.open("r+b") as handle:  # same size, same path
        handle.write(b"b")
    assert models._sha256_once(path) != first and len(hashed) == 2


def test_a_symlink_planted_as_the_cache_lock_is_refused_not_followed(tmp_path, monkeypatch):
    """Issue 17.3: the lock was opened with open("w"), which follows a link and empties its target."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache" / "smollm2-135m").mkdir(parents=True)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "cache" / "smollm2-135m" / ".tokenizer.lock")
    with pytest.raises(ModelLoadError, match=r"\.tokenizer\.lock is a symbolic link.*remove it"):
        models.tokenizer_dir("smollm2-135m")
    assert victim.read_text() == "keep me"


def test_an_unwritable_cache_is_one_line_with_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(models.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(
        ModelLoadError,
        match=r"cannot build the cached model folder .*: it lies below a file; set "
        r"ANCHORLENS_CACHE",
    ):
        models.tokenizer_dir("smollm2-135m")

    # Permission denied (chmod cannot show it to root, who runs these tests in containers): the lock's open fails.
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(
        ModelLoadError, match=r"smollm2-135m is not writable; set ANCHORLENS_CACHE to a writable folder"
    ):
        models.tokenizer_dir("smollm2-135m")


def test_a_complete_read_only_cache_needs_no_lock(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    folder = tmp_path / "smollm2-135m" / "hf"
    models._write_folder_atomically(folder, _fake_folder(FAKE_FILES))
    monkeypatch.setattr(models, "_folder_lock", None)  # calling it would fail
    assert models.converted_dir("smollm2-135m") == folder


def test_check_device_refuses_what_the_machine_lacks():
    models.check_device(None)
    models.check_device("cpu")
    models.check_device("cuda:1", cuda_devices=2)
    with pytest.raises(InvalidConfigError, match="unknown device 'gpu'"):
        models.check_device("gpu")
    with pytest.raises(InvalidConfigError, match="'cuda' needs a CUDA GPU and torch finds none.*use 'cpu'"):
        models.check_device("cuda", cuda_devices=0)
    with pytest.raises(InvalidConfigError, match=r"'cuda:2' does not exist: this machine has 2 CUDA GPU\(s\)"):
        models.check_device("cuda:2", cuda_devices=2)
    with pytest.raises(InvalidConfigError, match="'mps' needs Apple's MPS backend"):
        models.check_device("mps", mps_available=False)


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    """Issue 17.6: a local folder without a model was a ValueError traceback from transformers."""
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="is a folder but holds no Hugging Face model \\(no config.json\\)"):
        models.load_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="is a folder but holds no Hugging Face model"):
        models.load_model(str(tmp_path), model_class="bridge")
    with pytest.raises(ModelLoadError, match="is a folder but no tokenizer loads from it"):
        models.load_tokenizer(str(tmp_path))
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(ModelLoadError, match="is a folder but its model cannot be loaded \\(ValueError: "):
        models.load_model(str(tmp_path))


def test_context_and_vocabulary_known_before_loading(tmp_path):
    assert models.context_length("smollm2-135m") == 8192 and models.context_length("gemma-3-270m", "bridge") == 32768
    assert models.context_length("gemma-3-270m", "hooked") == 8192 and models.vocabulary_size("gemma-3-270m") == 262144
    (tmp_path / "config.json").write_text('{"n_positions": 1024, "vocab_size": 50257}')
    assert models.context_length(str(tmp_path)) == 1024 and models.vocabulary_size(str(tmp_path)) == 50257
    assert models.context_length("gpt2") is None and models.vocabulary_size(str(tmp_path / "none")) is None


# ------------------------------------------------------------------------ random models (no weights loaded)


def test_random_model_has_the_shape_asked_for_in_the_default_class():
    import torch

    from anchorlens.model_classes import default_model_class, model_class_of

    model = models.random_model(architecture="llama", n_layers=3, d_model=48, n_heads=6, d_head=8, d_mlp=96)
    assert model_class_of(model) == default_model_class()
    cfg = model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) == (3, 48, 6, 8, 96)
    assert cfg.n_key_value_heads == 3  # half the heads by default
    assert cfg.d_vocab == len(models.load_tokenizer("smollm2-135m"))
    assert cfg.default_prepend_bos is False
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]]))
    assert tuple(logits.shape) == (1, 3, cfg.d_vocab)
    gpt2 = models.random_model(architecture="gpt2")
    assert gpt2.cfg.normalization_type in ("LN", "LNPre")  # LayerNorm, not the llama architecture's RMSNorm
    assert not torch.equal(gpt2.blocks[0].attn.b_V, torch.zeros_like(gpt2.blocks[0].attn.b_V))


def test_random_model_is_the_same_for_a_seed_and_differs_across_seeds():
    import torch

    tokens = torch.tensor([[5, 60, 700, 8000]])
    with torch.no_grad():
        first, again, other = (models.random_model(architecture="gpt2", seed=seed)(tokens) for seed in (1, 1, 2))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    models.random_model(seed=5)
    assert torch.equal(torch.rand(3), expected)  # the caller's global generator is left as it was


@pytest.mark.bad_input  # an architecture outside the Literal, on purpose
def test_random_model_refuses_an_unknown_architecture_or_uneven_key_value_heads():
    with pytest.raises(InvalidConfigError, match=r"unknown architecture 'mistral' for random_model; use one of llama"):
        models.random_model(architecture="mistral")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="n_heads=4 is not a multiple of n_key_value_heads=3"):
        models.random_model(n_key_value_heads=3)
