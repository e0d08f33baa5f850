# apid/ - the apid actor: the control API (admin.request -> config.* -> admin.response).
PROGRAMS += apid
apid_SRCS := apid/main.c apid/api_actor.c apid/api_health.c apid/api_http.c apid/api_route.c apid/api_region.c \
             apid/api_cert.c apid/api_json.c apid/api_static.c apid/api_events.c
apid_LIBS := -ljansson -lcrypto
