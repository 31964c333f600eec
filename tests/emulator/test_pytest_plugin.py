"""The pytest plugin as a user's own suite meets it: plain pytest-asyncio, markers, the client."""

from __future__ import annotations

import re

import pytest

from tests.test_readme import snippets


def readme_fixture_example() -> str:
    """The README's example of the fixtures, exactly as written there."""
    (source,) = [source for source in snippets() if "minimax_client" in source]
    return source


def run_suite(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    # A fresh directory without this project's configuration: pytest-asyncio's strict mode.
    pytester.makepyfile(test_user=source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:anyio")


def test_readme_example_passes_under_strict_mode(pytester: pytest.Pytester) -> None:
    """The README's fixture example passes as written with pytest-asyncio's defaults."""
    result = run_suite(pytester, readme_fixture_example())
    result.assert_outcomes(passed=1)
    assert "not natively supported" not in result.stdout.str()


def test_client_fixture_polls_for_the_emulator(pytester: pytest.Pytester) -> None:
    """`minimax_client` is open, talks to the emulator, and polls in milliseconds, not seconds."""
    result = run_suite(
        pytester,
        """
        import pytest
        from minimax_s2v import Client, VideoRequest

        @pytest.mark.asyncio
        async def test_client(minimax_client, minimax_emulator):
            assert isinstance(minimax_client, Client)
            assert minimax_client.base_url == minimax_emulator.url
            assert minimax_client.polling.first_interval <= 0.05
            task = await minimax_client.submit(VideoRequest(subject="https://e.com/f.jpg"))
            await task.wait(timeout=5)
            assert minimax_emulator.state()["requests"]["query"] == {"success": 1}
        """,
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("sed=7", "unknown setting 'sed' (did you mean 'seed'?)"),
        ('durations="fast"', "EmulatorConfig.durations must be a Durations or a speed"),
        ('speed="warp"', "speed takes instant, demo, realistic or a factor"),
        ("late_fail_ratio=2", "EmulatorConfig.late_fail_ratio must be a probability between"),
        ('seed="seven"', "EmulatorConfig.seed must be None or an integer"),
        ('api_keys="mine"', "EmulatorConfig.api_keys must be a tuple of strings"),
        ('data_urls="refuse"', "EmulatorConfig.data_urls must be one of 'accept', 'reject'"),
        ("file_size=-1", "EmulatorConfig.file_size must be an integer >= 1"),
        ("7", "takes settings by name"),
    ],
)
def test_a_wrong_marker_setting_is_one_line(
    pytester: pytest.Pytester, settings: str, message: str
) -> None:
    """A misspelt or mistyped setting fails the test at setup with one line naming it."""
    result = run_suite(
        pytester,
        f"""
        import pytest

        @pytest.mark.minimax_emulator({settings})
        def test_marked(minimax_emulator):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    lines = [line for line in output.splitlines() if "minimax_emulator marker:" in line]
    assert lines, output
    assert message in lines[0], output
    assert "Traceback" not in output
    assert "During handling" not in output
    assert not re.search(r"attr[s]?/_make\.py|SubmissionUncertainError", output)


@pytest.mark.parametrize("settings", ['speed="demo"', 'durations="instant"', "speed=0.001"])
def test_the_command_line_speed_names_are_accepted(
    pytester: pytest.Pytester, settings: str
) -> None:
    """`speed=` takes what `--speed` takes; `durations=` takes the same names."""
    result = run_suite(
        pytester,
        f"""
        import pytest

        @pytest.mark.minimax_emulator({settings})
        def test_marked(minimax_emulator):
            assert minimax_emulator.emulator.config.durations.processing[1] <= 3.0
        """,
    )
    result.assert_outcomes(passed=1)
