/*  chat_actor - the chatd actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (chatd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See chatd/README.md for its messages.
*/
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "chat_actor.h"
#include "chat_hub.h"
#include "chat_redis.h"
#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"

struct chat_actor {
    proto_actor_t *actor; // loop, bus, signals
    chat_redis_t *redis;  // REDIS_URL, or NULL (every frame then gets "unavailable")
    chat_hub_t *hub;      // sessions
    char topics[3][PROTO_BUS_ADDRESS_MAX]; // chat.open/close/in@<us>; on every gateway
    ev_timer stats_timer;                  // copies Redis's counters for pong
    chat_redis_stats_t redis_stats;        // ... the copy
    uint64_t redis_up;                     // 1 while Redis is up (pong redis.up)
};

static const proto_cfg_opt_t s_opts[] = {
    {"REDIS_URL", "redis-url", PROTO_CFG_STR, NULL,
     "redis://[[user]:password@]host[:port][/db]: chat delivery, inboxes, presence",
     offsetof(chat_config_t, redis_url), 0, 0, NULL, PROTO_CFG_URL},
    {"CHAT_JWT_SECRET", "jwt-secret", PROTO_CFG_STR, NULL,
     "when set, chat sessions need an HS256 JWT signed with it (at least 32 bytes); user = sub",
     offsetof(chat_config_t, jwt_secret), PROTO_CFG_HS256_KEY_MIN, 0, NULL, PROTO_CFG_SECRET},
};

int
chat_config_load(chat_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    int rc = proto_actor_config("chatd", &cfg->common, &extra, 1, argc, argv);
    if (rc != 0)
        return rc;
    char why[128];
    chat_redis_url_t redis;
    if (cfg->redis_url && chat_redis_url_parse(cfg->redis_url, &redis, why, sizeof why) != 0) {
        char shown[512];
        proto_url_redact(cfg->redis_url, shown, sizeof shown);
        fprintf(stderr, "chatd: bad value for REDIS_URL: '%s' (%s)\n", shown, why);
        return 2;
    }
    return 0;
}

void
chat_config_free(chat_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
}

static void
s_on_redis_state(void *arg, bool up)
{
    chat_actor_t *self = arg;
    self->redis_up = up;
    if (up)
        log_info("redis up");
    else
        log_warn("redis down: chat frames get 'unavailable' until it is back",
                 LOG_S("error", chat_redis_last_error(self->redis)));
    if (self->hub)
        chat_hub_on_state(self->hub, up);
}

static void
s_on_redis_message(void *arg, const char *channel, const char *payload, size_t len)
{
    chat_actor_t *self = arg;
    if (self->hub)
        chat_hub_on_message(self->hub, channel, payload, len);
}

static void
s_on_redis_subscribed(void *arg, const char *channel)
{
    chat_actor_t *self = arg;
    if (self->hub)
        chat_hub_on_subscribed(self->hub, channel);
}

static void
s_on_stats_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    chat_actor_t *self = w->data;
    if (self->redis)
        chat_redis_stats(self->redis, &self->redis_stats);
}

chat_actor_t *
chat_actor_new(const chat_config_t *cfg)
{
    char err[512];
    chat_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("chatd", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    struct ev_loop *loop = proto_actor_loop(self->actor);
    proto_bus_t *bus = proto_actor_bus(self->actor);
    //  chat.in last: a gateway takes our subscription to it as "reachable",
    //  and by then the other two are in place (one connection keeps order)
    const proto_type_t types[3] = {PROTO_CHAT_OPEN, PROTO_CHAT_CLOSE, PROTO_CHAT_IN};
    //  our address carries our region: a gateway prefers a chatd of the
    //  region a session asks for (docs/chat.md "Regions")
    char address[PROTO_BUS_NAME_MAX + 1];
    snprintf(address, sizeof address, "%s/%s", cfg->common.instance_id, cfg->common.region);
    const char *topics[4] = {NULL};
    for (int i = 0; i < 3; i++) {
        proto_bus_address(self->topics[i], sizeof self->topics[i], types[i], address);
        topics[i] = self->topics[i];
    }
    if (proto_actor_use(self->actor, PROTO_KIND_GATEWAY, false, topics) != 0)
        goto fail;
    if (cfg->redis_url) {
        chat_redis_config_t rc = {
            .url = cfg->redis_url,
            .on_state = s_on_redis_state,
            .on_message = s_on_redis_message,
            .on_subscribed = s_on_redis_subscribed,
            .arg = self,
        };
        self->redis = chat_redis_new(loop, &rc);
        if (self->redis == NULL) {
            log_error("cannot use REDIS_URL");
            goto fail;
        }
    } else {
        log_warn("REDIS_URL is not set: chat frames are answered 'unavailable'");
    }
    self->hub = chat_hub_new(bus, cfg->common.instance_id, self->redis);
    if (self->hub == NULL)
        goto fail;
    const chat_hub_stats_t *hs = chat_hub_stats(self->hub);
    (void) proto_bus_counter(bus, "chat.sessions", &hs->sessions);
    (void) proto_bus_counter(bus, "chat.opened", &hs->opened);
    (void) proto_bus_counter(bus, "chat.messages", &hs->messages);
    (void) proto_bus_counter(bus, "chat.delivered", &hs->delivered);
    (void) proto_bus_counter(bus, "chat.errors", &hs->errors);
    (void) proto_bus_counter(bus, "chat.replayed", &hs->replayed);
    (void) proto_bus_counter(bus, "chat.duplicates", &hs->duplicates);
    (void) proto_bus_counter(bus, "chat.dropped", &hs->dropped);
    (void) proto_bus_counter(bus, "chat.rooms", &hs->rooms);
    if (self->redis) { // apid's /api/health counts instances reporting redis.up
        (void) proto_bus_counter(bus, "redis.up", &self->redis_up);
        (void) proto_bus_counter(bus, "redis.commands", &self->redis_stats.commands);
        (void) proto_bus_counter(bus, "redis.errors", &self->redis_stats.errors);
        (void) proto_bus_counter(bus, "redis.timeouts", &self->redis_stats.timeouts);
        (void) proto_bus_counter(bus, "redis.reconnects", &self->redis_stats.reconnects);
    }
    ev_timer_init(&self->stats_timer, s_on_stats_timer, 1.0, 1.0);
    self->stats_timer.data = self;
    ev_timer_start(loop, &self->stats_timer);
    ev_unref(loop); // the counters alone do not keep the loop running
    return self;
fail:
    chat_actor_destroy(&self);
    return NULL;
}

int
chat_actor_run(chat_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
chat_actor_destroy(chat_actor_t **self_p)
{
    chat_actor_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->actor && ev_is_active(&self->stats_timer)) {
        ev_ref(proto_actor_loop(self->actor));
        ev_timer_stop(proto_actor_loop(self->actor), &self->stats_timer);
    }
    //  Redis first, while the hub still takes the callbacks it ends ("closed")
    if (self->hub)
        chat_hub_set_redis(self->hub, NULL);
    chat_redis_destroy(&self->redis);
    chat_hub_destroy(&self->hub);
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
