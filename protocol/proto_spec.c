/*  proto_spec - print the message table of protocol/PROTOCOL.md.

    Walks the descriptors generated from messages.def and writes Markdown to
    stdout: one section per message in messages.def order (wire name, doc,
    sender, receivers, socket, a table of its body fields), then the records
    those messages carry. `make spec` puts this output between PROTOCOL.md's
    BEGIN/END MESSAGES markers; `make spec-check` fails when they differ, so
    the document can never drift from the code. Output depends on nothing but
    messages.def. Exits 1 if stdout could not be written.
*/
#include <stdio.h>
#include <stdlib.h>

#include "proto.h"
#include "proto_desc.h"

//  Every record of messages.def, in definition order, NULL-terminated.
static const proto_sdesc_t *(*const s_records[])(void) = {
#define PROTO_STRUCT(C, name, doc, fields) proto_sdesc_##name,
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields)
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT
    NULL,
};

//  Write text for a table cell or a paragraph. '|' would end a cell and
//  "<reason>" would be taken for an HTML tag, so both are escaped.
static void
s_print_text(const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            fputs("\\|", stdout);
        else if (*p == '<')
            fputs("&lt;", stdout);
        else
            putchar(*p);
    }
}

static void
s_print_type(const proto_field_t *f)
{
    if (f->type == PROTO_FT_LIST)
        printf("list of `%s`", f->sub()->name);
    else if (f->type == PROTO_FT_KV)
        fputs("map str→str", stdout);
    else
        fputs(proto_ftype_name(f->type), stdout);
}

static void
s_print_bound(const proto_field_t *f)
{
    switch (f->type) {
        case PROTO_FT_LIST:
            printf("≤ %u items", (unsigned) f->bound);
            break;
        case PROTO_FT_KV:
            printf("≤ %u pairs of ≤ %u B", (unsigned) f->bound, (unsigned) f->item_bound);
            break;
        case PROTO_FT_STR:
        case PROTO_FT_BIN:
            printf("≤ %u B", (unsigned) f->bound);
            break;
        case PROTO_FT_U8:
        case PROTO_FT_U16:
        case PROTO_FT_U32:
        case PROTO_FT_U64:
            if (f->bound)
                printf("≤ %u", (unsigned) f->bound);
            else
                putchar('-');
            break;
        default:
            putchar('-');
            break;
    }
}

static void
s_print_fields(const proto_sdesc_t *d)
{
    if (d->nfields == 0) {
        fputs("No body fields.\n\n", stdout);
        return;
    }
    fputs("| field | type | bound | required | meaning |\n", stdout);
    fputs("| --- | --- | --- | --- | --- |\n", stdout);
    for (size_t i = 0; i < d->nfields; i++) {
        const proto_field_t *f = &d->fields[i];
        printf("| `%s` | ", f->key);
        s_print_type(f);
        fputs(" | ", stdout);
        s_print_bound(f);
        printf(" | %s | ", f->required ? "yes" : "no");
        s_print_text(f->doc);
        fputs(" |\n", stdout);
    }
    putchar('\n');
}

int
main(int argc, char **argv)
{
    (void) argc;
    (void) argv;
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        const proto_mdesc_t *md = proto_mdesc((proto_type_t) t);
        printf("### `%s`\n\n", md->wire);
        s_print_text(md->doc);
        fputs("\n\n- sender: ", stdout);
        s_print_text(md->sender);
        fputs("; receivers: ", stdout);
        s_print_text(md->receivers);
        printf("; socket: %s\n\n", md->socket);
        s_print_fields(md->body());
    }
    fputs("### Records\n\n", stdout);
    fputs("Records are msgpack maps inside a message (a `list of` field holds an array of "
          "them). They carry no envelope, so their keys may be any name.\n\n",
          stdout);
    for (size_t r = 0; s_records[r]; r++) {
        const proto_sdesc_t *d = s_records[r]();
        printf("#### `%s`\n\n", d->name);
        s_print_text(d->doc);
        fputs("\n\n", stdout);
        s_print_fields(d);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("proto_spec: stdout");
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
