# tests/fuzz/ - libFuzzer targets, built and run by `make fuzz` (not part of `make test`).
# tests/fuzz/fuzz_<name>.c is linked with FUZZ_<name>_SRCS and FUZZ_<name>_LIBS; its seeds are
# tests/fuzz/corpus/<name>/ and its dictionary, if any, tests/fuzz/<name>.dict.
FUZZ_prescan_SRCS := gateway/gw_prescan.c
FUZZ_chunk_SRCS := gateway/gw_chunk.c
FUZZ_chunk_LIBS := -lhttp_parser
# The three JSON-body targets share tests/fuzz/fuzz_json_common.h (header only: a .c named
# fuzz_*.c would be taken for a target); the Makefile rebuilds them when it changes.
FUZZ_route_json_SRCS := apid/api_route.c apid/api_cert.c \
                        apid/api_json.c protocol/proto_route.c protocol/proto_strategy.c \
                        protocol/proto_util.c
FUZZ_route_json_LIBS := -ljansson -lcrypto -lm
FUZZ_cert_json_SRCS := apid/api_cert.c apid/api_json.c \
                       protocol/proto_route.c protocol/proto_strategy.c protocol/proto_util.c
FUZZ_cert_json_LIBS := -ljansson -lcrypto -lm
FUZZ_region_json_SRCS := apid/api_region.c apid/api_json.c \
                         protocol/proto_route.c protocol/proto_strategy.c protocol/proto_util.c
FUZZ_region_json_LIBS := -ljansson -lm
# fuzz_proto: proto_decode and what it needs (the encoder packs with msgpack-c); `=` so that
# pkg-config only runs when the recipe needs it, as the Makefile's PKG_LIBS does.
FUZZ_proto_SRCS := protocol/proto.c protocol/proto_desc.c protocol/proto_mp.c \
                    protocol/proto_util.c
FUZZ_proto_LIBS = $(shell pkg-config --libs msgpack)
# fuzz_probe: healthd's status-line check and request writer (hd_probe.c uses libev for
# the probe itself).
FUZZ_probe_SRCS := healthd/hd_probe.c protocol/proto_util.c
FUZZ_probe_LIBS := -lev
# fuzz_resp: gw_resp, the backend's response head collected from http-parser's pieces
FUZZ_resp_SRCS := gateway/gw_resp.c gateway/gw_http.c
FUZZ_resp_LIBS := -lhttp_parser
# fuzz_chat_frame: chatd's client frame parser and server frame encoders (proto_log_json_string
# escapes their strings; proto_log.c needs proto_util.c and -lm).
FUZZ_chat_frame_SRCS := chatd/chat_frame.c protocol/proto_log.c protocol/proto_util.c
FUZZ_chat_frame_LIBS := -ljansson -lm
# fuzz_ws: gw_ws, the gateway's chat WebSocket (wslay), on a socketpair and a real libev loop
FUZZ_ws_SRCS := gateway/gw_ws.c protocol/proto_util.c
FUZZ_ws_LIBS := -lwslay -lev -lcrypto
# fuzz_authp_response: gw_authp's reading of an authProvider's answer (gw_authp.c brings gw_dns,
# c-ares, OpenSSL and jansson for the rest of the module; `=` for pkg-config, as above)
FUZZ_authp_response_SRCS := gateway/gw_authp.c gateway/gw_dns.c protocol/proto_resolve.c \
                            protocol/proto_log.c protocol/proto_util.c
FUZZ_authp_response_LIBS = -lhttp_parser -ljansson -lssl -lcrypto -lev \
                           $(shell pkg-config --libs libcares) -lm
