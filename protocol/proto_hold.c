/*  proto_hold - see proto_hold.h. Subscription counts per address in a
    proto_pairs map; held messages in one FIFO (oldest first), each with its
    address, so expiry looks at the head only and a release walks the FIFO
    once.
*/
#include <stdlib.h>
#include <string.h>

#include "proto_hold.h"
#include "proto_list.h"
#include "proto_pairs.h"
#include "proto_util.h"

#define S_TOPIC_MAX 160 // longest address kept ("<type>@<instance>;")

typedef struct {
    int64_t subs;  // subscriptions now
    uint64_t held; // messages held for it
} s_addr_t;

typedef struct {
    proto_link_t link;       // in the FIFO
    uint64_t at_ms;          // when it was held
    char topic[S_TOPIC_MAX]; // its address, NUL-terminated
    size_t tlen;             // its length
    size_t len;              // body bytes
    unsigned char body[];    // the encoded message
} s_msg_t;

struct proto_hold {
    proto_pairs_t *addrs; // (topic, "") -> s_addr_t
    proto_list_t fifo;    // s_msg_t, oldest at the tail
    uint64_t bytes;       // body bytes held
    uint64_t dropped;     // expired or over a bound
};

proto_hold_t *
proto_hold_new(void)
{
    proto_hold_t *self = proto_xcalloc(1, sizeof *self);
    self->addrs = proto_pairs_new(sizeof(s_addr_t), 1u << 20);
    return self;
}

//  The address's record (made when create), or NULL.
static s_addr_t *
s_addr(const proto_hold_t *self, const char *topic, size_t tlen, bool create)
{
    char key[S_TOPIC_MAX];
    if (tlen == 0 || tlen >= sizeof key)
        return NULL;
    memcpy(key, topic, tlen);
    key[tlen] = '\0';
    return create ? proto_pairs_put(self->addrs, key, "", NULL)
                  : proto_pairs_get(self->addrs, key, "");
}

bool
proto_hold_reachable(const proto_hold_t *self, const char *topic, size_t tlen)
{
    const s_addr_t *a = s_addr(self, topic, tlen, false);
    return a && a->subs > 0;
}

int
proto_hold_keep(proto_hold_t *self,
                const char *topic,
                size_t tlen,
                const void *body,
                size_t len,
                uint64_t now_ms)
{
    s_addr_t *a = s_addr(self, topic, tlen, true);
    if (a == NULL || self->fifo.count >= PROTO_HOLD_MSGS || self->bytes + len > PROTO_HOLD_BYTES) {
        self->dropped++;
        return -1;
    }
    s_msg_t *m = proto_xmalloc(sizeof *m + len);
    memset(&m->link, 0, sizeof m->link);
    m->at_ms = now_ms;
    memcpy(m->topic, topic, tlen);
    m->topic[tlen] = '\0';
    m->tlen = tlen;
    m->len = len;
    memcpy(m->body, body, len);
    proto_list_push_front(&self->fifo, &m->link);
    self->bytes += len;
    a->held++;
    return 0;
}

static void
s_free(proto_hold_t *self, s_msg_t *m)
{
    s_addr_t *a = s_addr(self, m->topic, m->tlen, false);
    if (a && a->held > 0)
        a->held--;
    proto_list_unlink(&self->fifo, &m->link);
    self->bytes -= m->len;
    free(m);
}

void
proto_hold_subscription(proto_hold_t *self,
                        const char *topic,
                        size_t tlen,
                        bool subscribed,
                        proto_hold_send_fn *send,
                        void *arg)
{
    s_addr_t *a = s_addr(self, topic, tlen, subscribed);
    if (a == NULL)
        return;
    if (!subscribed) {
        if (a->subs > 0)
            a->subs--;
        return;
    }
    if (a->subs++ > 0 || a->held == 0)
        return;
    // reachable now: what waited for it goes first, oldest first
    proto_link_t *l = self->fifo.tail;
    while (l && a->held > 0) {
        proto_link_t *towards_new = l->prev;
        s_msg_t *m = PROTO_LIST_ENTRY(l, s_msg_t, link);
        if (m->tlen == tlen && memcmp(m->topic, topic, tlen) == 0) {
            if (send(arg, m->topic, m->tlen, m->body, m->len) != 0)
                self->dropped++;
            s_free(self, m);
        }
        l = towards_new;
    }
}

size_t
proto_hold_expire(proto_hold_t *self, uint64_t now_ms)
{
    size_t n = 0;
    while (self->fifo.tail) {
        s_msg_t *m = PROTO_LIST_ENTRY(self->fifo.tail, s_msg_t, link);
        if (now_ms < m->at_ms + PROTO_HOLD_MS)
            break;
        s_free(self, m);
        self->dropped++;
        n++;
    }
    return n;
}

uint64_t
proto_hold_count(const proto_hold_t *self)
{
    return self->fifo.count;
}

uint64_t
proto_hold_dropped(const proto_hold_t *self)
{
    return self->dropped;
}

void
proto_hold_destroy(proto_hold_t **self_p)
{
    proto_hold_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->fifo.tail)
        s_free(self, PROTO_LIST_ENTRY(self->fifo.tail, s_msg_t, link));
    proto_pairs_destroy(&self->addrs);
    free(self);
    *self_p = NULL;
}
