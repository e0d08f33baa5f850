# tests/cli/ - integration test of `switchyard run`: the whole stack under the supervisor.
IT_TESTS += tests/cli/it_run
