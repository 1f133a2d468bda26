"""InstancesTable overrides private DataTable names for speed: this is the one test that says when Textual moved."""

from __future__ import annotations

import inspect

import textual
from textual.widgets import DataTable

from usim_tui.app.widgets.instances import DATATABLE_PRIVATE, TEXTUAL_VERSION, InstancesTable

WHERE = "usim_tui/app/widgets/instances.py (InstancesTable)"


def test_the_datatable_internals_it_overrides_are_those_of_the_installed_textual():
    names = ", ".join(DATATABLE_PRIVATE)
    assert textual.__version__ == TEXTUAL_VERSION, (
        f"{WHERE} overrides DataTable's private {names}, read in Textual {TEXTUAL_VERSION}'s source; Textual "
        f"{textual.__version__} is installed. Check each against its DataTable, run tests/app and bench/tui.py, "
        "then set TEXTUAL_VERSION.")
    table = DataTable()
    missing = [name for name in DATATABLE_PRIVATE if not hasattr(table, name)]
    assert not missing, f"{WHERE} uses DataTable's private {', '.join(missing)}: gone in Textual {textual.__version__}"
    for name in ("_render_cell", "_get_row_style", "_clear_caches"):  # called through super() with these arguments
        theirs = list(inspect.signature(getattr(DataTable, name)).parameters)
        ours = list(inspect.signature(getattr(InstancesTable, name)).parameters)
        assert ours == theirs, f"{WHERE}.{name} takes {ours}; DataTable.{name} now takes {theirs}"
