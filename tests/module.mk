# tests/ - unit tests (cmocka) and integration tests of each actor binary.
UNIT_TESTS += tests/protocol/test_proto tests/protocol/test_log tests/protocol/test_config \
        tests/protocol/test_disc tests/protocol/test_zwatch
