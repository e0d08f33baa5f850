# tests/tools/ - integration test of bin/demo-backend (plain sockets, no bus).
IT_TESTS += tests/tools/it_demo_backend
tests/tools/it_demo_backend_LIBS := -lhttp_parser -lcrypto
