# tools/demo.mk - the demo backend `demo-backend`: two of them are the demo's
# Server A and B (make run), one is the upstream of every benchmark (make bench).
PROGRAMS += demo-backend
demo-backend_SRCS := tools/demo_backend.c tools/demo_server.c tools/demo_routes.c \
        tools/demo_conn.c tools/demo_out.c tools/demo_request.c
demo-backend_LIBS := -lhttp_parser -lcrypto
