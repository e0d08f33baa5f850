# tests/demo/ - integration test of bin/demo-backend (plain sockets, no bus).
IT_TESTS += tests/demo/it_demo_backend
tests/demo/it_demo_backend_LIBS := -lhttp_parser -lcrypto
# demo/ shares no code with the proxy (demo/README.md): includes, sources, binary
SCRIPT_TESTS += tests/demo/test_demo_apart.sh
