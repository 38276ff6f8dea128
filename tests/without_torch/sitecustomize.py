"""Put this folder first on PYTHONPATH and Python starts as in a `make install GEMINI_ONLY=1`
environment: the local model's packages cannot be found or imported (tests/test_light_install.py)."""

import sys

LEFT_OUT = {"torch", "torchvision", "transformers", "tokenizers", "accelerate", "peft"}


class _LeftOut:
    """A meta path finder that says the local model's packages are not installed."""

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name.split(".")[0] in LEFT_OUT:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None


sys.meta_path.insert(0, _LeftOut())
