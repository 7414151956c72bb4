"""Notebook parameters: default, smoke value, environment override, types and bad values."""

from pathlib import Path

import pytest

from vit_replication.errors import UserError
from vit_replication.settings import setting


def test_default_smoke_and_override():
    assert setting("EPOCHS", 10, smoke=1, environ={}, smoke_mode=False) == 10
    assert setting("EPOCHS", 10, smoke=1, environ={}, smoke_mode=True) == 1
    assert setting("EPOCHS", 10, environ={}, smoke_mode=True) == 10  # no smoke value: the default
    assert setting("EPOCHS", 10, smoke=1, environ={"VIT_EPOCHS": "3"}, smoke_mode=True) == 3  # the reader wins


def test_types_follow_the_default():
    env = {"VIT_LR": "5e-4", "VIT_RUN_DIR": "/tmp/run", "VIT_SIZE": "256", "VIT_DOWNLOAD": "false", "VIT_NAME": "x"}
    assert setting("LR", 1e-3, environ=env) == 5e-4
    assert setting("RUN_DIR", Path("../runs"), environ=env) == Path("/tmp/run")
    assert setting("SIZE", None, smoke=128, environ=env) == 256 and isinstance(setting("SIZE", None, smoke=1,
                                                                                      environ=env), int)
    assert setting("DOWNLOAD", True, environ=env) is False
    assert setting("NAME", "cifar10", environ=env) == "x"


@pytest.mark.parametrize("name, default, text, words", [
    ("EPOCHS", 10, "ten", "VIT_EPOCHS='ten': expected an integer"),
    ("LR", 1e-3, "fast", "VIT_LR='fast': expected a number"),
    ("DOWNLOAD", True, "maybe", "VIT_DOWNLOAD='maybe': expected 1 or 0"),
])
def test_bad_values_name_the_variable(name, default, text, words):
    with pytest.raises(UserError, match=words):
        setting(name, default, environ={f"VIT_{name}": text})
