# tests/fuzz/ - libFuzzer targets, built and run by `make fuzz` (not part of `make test`).
# tests/fuzz/fuzz_<name>.c is linked with FUZZ_<name>_SRCS and FUZZ_<name>_LIBS; its seeds are
# tests/fuzz/corpus/<name>/ and its dictionary, if any, tests/fuzz/<name>.dict.
FUZZ_prescan_SRCS := gateway/gw_prescan.c
FUZZ_chunk_SRCS := gateway/gw_chunk.c
FUZZ_chunk_LIBS := -lhttp_parser
FUZZ_route_json_SRCS := apid/api_route.c apid/api_cert.c apid/api_json.c protocol/proto_route.c \
                        protocol/proto_strategy.c protocol/proto_util.c
FUZZ_route_json_LIBS := -ljansson -lcrypto -lm
FUZZ_cert_json_SRCS := apid/api_cert.c apid/api_json.c protocol/proto_route.c \
                       protocol/proto_strategy.c protocol/proto_util.c
FUZZ_cert_json_LIBS := -ljansson -lcrypto -lm
FUZZ_region_json_SRCS := apid/api_region.c apid/api_json.c protocol/proto_route.c \
                         protocol/proto_strategy.c protocol/proto_util.c
FUZZ_region_json_LIBS := -ljansson -lm
