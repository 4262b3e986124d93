import pytest

from tests.helpers import make_course


@pytest.fixture
def course(tmp_path):
    """A scratch copy of the course folder (source, release, config), for nbgrader runs."""
    return make_course(tmp_path / "course")
