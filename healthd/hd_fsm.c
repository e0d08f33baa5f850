/*  hd_fsm - the dead/alive state machine as one table (see hd_fsm.h). */
#include "hd_fsm.h"

#define S(st, act)                                                                                 \
    {                                                                                              \
        HD_FSM_##st, HD_FSM_##act                                                                  \
    }

//  Rows: the current state. Columns: SUCCESS, FAILURE, REFUSED, MAINT_ON, MAINT_OFF.
static const hd_fsm_step_t s_table[HD_FSM_STATES][HD_FSM_EVENTS] = {
    [HD_FSM_UNKNOWN] = {S(UNKNOWN_S1, NONE), S(UNKNOWN_F1, NONE), S(DEAD, DOWN), S(MAINT, DOWN),
                        S(UNKNOWN, NONE)},
    [HD_FSM_UNKNOWN_S1] = {S(ALIVE, UP), S(UNKNOWN_F1, NONE), S(DEAD, DOWN), S(MAINT, DOWN),
                           S(UNKNOWN_S1, NONE)},
    [HD_FSM_UNKNOWN_F1] = {S(UNKNOWN_S1, NONE), S(UNKNOWN_F2, NONE), S(DEAD, DOWN), S(MAINT, DOWN),
                           S(UNKNOWN_F1, NONE)},
    [HD_FSM_UNKNOWN_F2] = {S(UNKNOWN_S1, NONE), S(DEAD, DOWN), S(DEAD, DOWN), S(MAINT, DOWN),
                           S(UNKNOWN_F2, NONE)},
    [HD_FSM_RESUMED] = {S(ALIVE, UP), S(UNKNOWN_F1, NONE), S(DEAD, DOWN), S(MAINT, DOWN),
                        S(RESUMED, NONE)},
    [HD_FSM_ALIVE] = {S(ALIVE, NONE), S(ALIVE_F1, NONE), S(DEAD, DOWN), S(MAINT, DOWN),
                      S(ALIVE, NONE)},
    [HD_FSM_ALIVE_F1] = {S(ALIVE, NONE), S(ALIVE_F2, NONE), S(DEAD, DOWN), S(MAINT, DOWN),
                         S(ALIVE_F1, NONE)},
    [HD_FSM_ALIVE_F2] = {S(ALIVE, NONE), S(DEAD, DOWN), S(DEAD, DOWN), S(MAINT, DOWN),
                         S(ALIVE_F2, NONE)},
    [HD_FSM_DEAD] = {S(DEAD_S1, NONE), S(DEAD, NONE), S(DEAD, NONE), S(MAINT, DOWN), S(DEAD, NONE)},
    [HD_FSM_DEAD_S1] = {S(ALIVE, UP), S(DEAD, NONE), S(DEAD, NONE), S(MAINT, DOWN),
                        S(DEAD_S1, NONE)},
    // maintenance ignores probes and passive failures; leaving it resumes
    [HD_FSM_MAINT] = {S(MAINT, NONE), S(MAINT, NONE), S(MAINT, NONE), S(MAINT, NONE),
                      S(RESUMED, NONE)},
};

hd_fsm_step_t
hd_fsm_step(hd_fsm_state_t state, hd_fsm_event_t event)
{
    if ((unsigned) state >= HD_FSM_STATES || (unsigned) event >= HD_FSM_EVENTS)
        return (hd_fsm_step_t){state, HD_FSM_NONE};
    return s_table[state][event];
}

bool
hd_fsm_is_dead(hd_fsm_state_t state)
{
    return state == HD_FSM_DEAD || state == HD_FSM_DEAD_S1;
}

bool
hd_fsm_is_probed(hd_fsm_state_t state)
{
    return state != HD_FSM_MAINT;
}

bool
hd_fsm_has_verdict(hd_fsm_state_t state)
{
    return state >= HD_FSM_ALIVE && state < HD_FSM_STATES;
}

unsigned
hd_fsm_failures(hd_fsm_state_t state)
{
    switch (state) {
        case HD_FSM_UNKNOWN_F1:
        case HD_FSM_ALIVE_F1:
            return 1;
        case HD_FSM_UNKNOWN_F2:
        case HD_FSM_ALIVE_F2:
            return 2;
        default:
            return 0;
    }
}

const char *
hd_fsm_state_name(hd_fsm_state_t state)
{
    static const char *const names[HD_FSM_STATES] = {
        "unknown",  "unknown_s1", "unknown_f1", "unknown_f2", "resumed",     "alive",
        "alive_f1", "alive_f2",   "dead",       "dead_s1",    "maintenance",
    };
    return (unsigned) state < HD_FSM_STATES ? names[state] : "?";
}
