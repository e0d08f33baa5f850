/*  chatd - main: read the settings, then create, run and destroy the actor. */
#include "chat_actor.h"

int
main(int argc, char **argv)
{
    chat_config_t cfg = {0};
    int rc = chat_config_load(&cfg, argc, argv);
    if (rc == 0) {
        chat_actor_t *actor = chat_actor_new(&cfg);
        rc = actor ? chat_actor_run(actor) : 1;
        chat_actor_destroy(&actor);
    } else if (rc == 1) {
        rc = 0; // --help
    }
    chat_config_free(&cfg);
    return rc;
}
