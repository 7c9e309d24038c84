"""Running `uvs` in-process for tests, and what a clean failure looks like."""

from click.testing import CliRunner

from uvs.cli.main import main


def run(*args):
    """`uvs ARGS...` through click's runner; stdout and stderr kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def one_line_error(result, *fragments):
    """Exit status 1, one line on stderr naming each fragment, nothing on stdout, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in result.output, err
    for fragment in fragments:
        assert fragment in err, err
    assert result.stdout == ""
