# demo/ - the demo backend `demo-backend`: two of them are the demo's Server A
# and B (make run), one is the upstream of every benchmark (make bench).
# Bus-less and apart from the proxy: libproto's config/log/util helpers only
# (demo/README.md).
PROGRAMS += demo-backend
demo-backend_SRCS := demo/demo_backend.c demo/demo_server.c demo/demo_routes.c \
        demo/demo_conn.c demo/demo_out.c demo/demo_request.c
demo-backend_LIBS := -Wl,--as-needed -lhttp_parser -lcrypto
