# gateway/ - the gateway actor.
PROGRAMS += gateway
GATEWAY_MODULES := gateway/gw_actor.c gateway/gw_admin.c gateway/gw_buf.c gateway/gw_cidr.c \
        gateway/gw_conn.c gateway/gw_head.c gateway/gw_http.c gateway/gw_lease.c gateway/gw_prescan.c gateway/gw_proxy.c \
        gateway/gw_report.c
GATEWAY_MODULES += gateway/gw_chunk.c gateway/gw_queue.c gateway/gw_dns.c gateway/gw_resp.c
GATEWAY_MODULES += gateway/gw_tunnel.c gateway/gw_splice.c
GATEWAY_MODULES += gateway/gw_ws.c gateway/gw_jwt.c gateway/gw_chat.c gateway/gw_events.c
GATEWAY_MODULES += gateway/gw_tls.c
gateway_SRCS = gateway/main.c $(GATEWAY_MODULES) # "=": modules appended below count
gateway_LIBS := -lhttp_parser -lssl -lcrypto -lwslay -ljwt
GATEWAY_MODULES += gateway/gw_cors.c gateway/gw_edge.c
gateway_LIBS += -ljansson
GATEWAY_MODULES += gateway/gw_auth.c gateway/gw_authp.c
gateway_LIBS += -lcrypt
GATEWAY_MODULES += gateway/gw_rl.c
gateway_LIBS += -lhiredis
