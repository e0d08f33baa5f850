/*  gw_resp - a backend's response head, collected in place (see gw_resp.h). */
#include <string.h>

#include "gw_resp.h"

void
gw_resp_head_reset(gw_resp_head_t *head)
{
    head->reason = NULL;
    head->reason_len = 0;
    head->nfields = 0;
    head->in_value = false;
    head->bad = false;
}

void
gw_resp_head_status(gw_resp_head_t *head, const char *at, size_t len)
{
    if (head->reason && head->reason + head->reason_len == at) {
        head->reason_len += len;
    } else if (head->reason == NULL) {
        head->reason = at;
        head->reason_len = len;
    }
}

void
gw_resp_head_field(gw_resp_head_t *head, const char *at, size_t len)
{
    gw_rfield_t *f = head->nfields ? &head->fields[head->nfields - 1] : NULL;
    if (f && !head->in_value && f->name + f->name_len == at) {
        f->name_len += len; // the same name, in two pieces
        return;
    }
    if (head->nfields >= GW_RESP_FIELDS_MAX) {
        head->bad = true;
        return;
    }
    f = &head->fields[head->nfields++];
    *f = (gw_rfield_t){.name = at, .name_len = len, .value = at + len, .value_len = 0};
    head->in_value = false;
}

void
gw_resp_head_value(gw_resp_head_t *head, const char *at, size_t len)
{
    if (head->nfields == 0 || head->bad)
        return;
    gw_rfield_t *f = &head->fields[head->nfields - 1];
    if (!head->in_value) {
        f->value = at;
        f->value_len = len;
    } else if (f->value + f->value_len == at) {
        f->value_len += len;
    } else {
        head->bad = true; // obs-fold from a lax backend: not relayed (RFC 9112 §5.2)
    }
    head->in_value = true;
}

void
gw_resp_head_done(gw_resp_head_t *head)
{
    for (uint32_t i = 0; i < head->nfields; i++)
        head->fields[i].id = gw_http_header(head->fields[i].name, head->fields[i].name_len);
}

bool
gw_resp_head_listed(const gw_resp_head_t *head, const gw_rfield_t *f)
{
    if (gw_http_flags(f->id) & GW_HF_PROTECTED)
        return false;
    for (uint32_t i = 0; i < head->nfields; i++) {
        const gw_rfield_t *c = &head->fields[i];
        if (c->id == GW_H_CONNECTION
            && gw_http_list_has(c->value, c->value_len, f->name, f->name_len))
            return true;
    }
    return false;
}
