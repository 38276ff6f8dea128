"""The README documents every setting and every `make` variable a user may set (a newcomer found
`PORT=` and `VCHAT_ADAPTERS_DIR` nowhere)."""

from __future__ import annotations

import re

from core.config import Settings
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def settings_table() -> str:
    return README[README.index("## Settings") : README.index("\n## ", README.index("## Settings") + 1)]


def test_every_setting_is_in_the_settings_table():
    table = settings_table()
    documented = set(re.findall(r"^\| `(VCHAT_[A-Z_]+|GEMINI_API_KEY)` \|", table, flags=re.M))
    missing = []
    for name, field in Settings.model_fields.items():
        env = f"VCHAT_{name.upper()}"
        aliases = set(getattr(field.validation_alias, "choices", []) or [])
        if env not in documented and not aliases & documented:
            missing.append(env)
    assert missing == []


def test_every_make_variable_a_user_sets_is_documented():
    makefile = (ROOT / "Makefile").read_text()
    user_variables = set(re.findall(r"^([A-Z_]+) \?=", makefile, flags=re.M)) - {"PYTHON"}
    user_variables |= set(re.findall(r"\$\(if \$\(([A-Z_]+)\)", makefile))
    assert user_variables == {"PORT", "GEMINI_ONLY"}
    for variable in user_variables:
        assert re.search(rf"`make (run|install)[^`]*{variable}=", README), variable
