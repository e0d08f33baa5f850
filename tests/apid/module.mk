# tests/apid/ - unit tests of apid's modules (it_apid is listed in tests/module.mk).
UNIT_TESTS += tests/apid/test_route_json tests/apid/test_http tests/apid/test_region_json \
        tests/apid/test_cert_json
tests/apid/test_route_json_SRCS := apid/api_route.c apid/api_cert.c apid/api_json.c tests/lib/t_pki.c
tests/apid/test_route_json_LIBS := -ljansson -lcrypto -lcrypto
tests/apid/test_region_json_SRCS := apid/api_region.c apid/api_json.c
tests/apid/test_region_json_LIBS := -ljansson
tests/apid/test_http_SRCS := apid/api_http.c apid/api_health.c apid/api_events.c apid/api_static.c apid/api_route.c apid/api_region.c apid/api_cert.c \
        apid/api_json.c
tests/apid/test_http_LIBS := -ljansson -lcrypto
tests/apid/test_cert_json_SRCS := apid/api_cert.c apid/api_json.c tests/lib/t_pki.c
tests/apid/test_cert_json_LIBS := -ljansson -lcrypto
tests/apid/it_apid_LIBS := -ljansson
UNIT_TESTS += tests/apid/test_static
tests/apid/test_static_SRCS := apid/api_static.c
tests/apid/test_static_LIBS := -lcrypto
