# tests/cli/ - the operator CLI: unit tests of its modules, and the integration test of
# `switchyard run` (the whole stack under the supervisor).
UNIT_TESTS += tests/cli/test_cert
tests/cli/test_cert_SRCS := tools/cli_cert.c
tests/cli/test_cert_LIBS := -lcrypto
IT_TESTS += tests/cli/it_run
tests/cli/it_run_LIBS := -lssl -lcrypto
