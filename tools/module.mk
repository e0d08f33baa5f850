# tools/ - the operator CLI `switchyard`.
PROGRAMS += switchyard
switchyard_SRCS := tools/switchyard.c tools/cli_common.c tools/cli_ping.c tools/cli_tap.c \
        tools/cli_json.c tools/cli_run.c
switchyard_SRCS += tools/cli_routes.c tools/cli_cert.c tools/cli_keygen.c
switchyard_LIBS := -lcurl -ljansson -lcrypto
