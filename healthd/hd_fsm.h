/*  hd_fsm - the dead/alive state machine of one (route, backend), as a table.

    SPEC §6: dead after 3 consecutive failures (1 when the failure is
    "connection refused"), alive again after 2 consecutive successful
    recovery probes. Passive failures (a gateway's upstream.failed) are the
    same events as probe failures. Maintenance overrides everything.

    A new state (a healthd that just started, a backend just added) is
    UNKNOWN: nothing is published until the machine reaches a verdict, alive
    after 2 consecutive successes, dead as above. A backend the operator
    takes out of maintenance is RESUMED: it was published down (maintenance)
    and is not dead by any check, so its first successful probe (run at once)
    publishes it up; a failure continues as UNKNOWN_F1.
    See healthd/README.md ("Restart without a flap").
*/
#ifndef HD_FSM_H
#define HD_FSM_H

#include <stdbool.h>

typedef enum {
    HD_FSM_UNKNOWN,    // no verdict yet, no result since
    HD_FSM_UNKNOWN_S1, // no verdict, 1 success
    HD_FSM_UNKNOWN_F1, // no verdict, 1 failure
    HD_FSM_UNKNOWN_F2, // no verdict, 2 consecutive failures
    HD_FSM_RESUMED,    // just out of maintenance (published down): 1 success is enough
    HD_FSM_ALIVE,      // alive
    HD_FSM_ALIVE_F1,   // alive, 1 failure
    HD_FSM_ALIVE_F2,   // alive, 2 consecutive failures
    HD_FSM_DEAD,       // dead
    HD_FSM_DEAD_S1,    // dead, 1 successful recovery probe
    HD_FSM_MAINT,      // in maintenance: reported down, not probed
    HD_FSM_STATES
} hd_fsm_state_t;

typedef enum {
    HD_FSM_SUCCESS,   // a probe succeeded (2xx/3xx, or TCP connected)
    HD_FSM_FAILURE,   // a probe or an upstream attempt failed (timeout, reset, 5xx...)
    HD_FSM_REFUSED,   // ... with "connection refused"
    HD_FSM_MAINT_ON,  // the configuration puts it in maintenance
    HD_FSM_MAINT_OFF, // the configuration takes it out of maintenance
    HD_FSM_EVENTS
} hd_fsm_event_t;

typedef enum {
    HD_FSM_NONE, // nothing to publish
    HD_FSM_UP,   // publish backend.state up
    HD_FSM_DOWN, // publish backend.state down
} hd_fsm_action_t;

typedef struct {
    hd_fsm_state_t next;    // the state after the event
    hd_fsm_action_t action; // what to publish
} hd_fsm_step_t;

//  The transition for (state, event). Out-of-range input returns {state, NONE}.
hd_fsm_step_t hd_fsm_step(hd_fsm_state_t state, hd_fsm_event_t event);

//  True for states that count as alive/dead for the schedule: dead ones are
//  probed every HEALTHD_RECOVERY_INTERVAL, maintenance not at all.
bool hd_fsm_is_dead(hd_fsm_state_t state);
bool hd_fsm_is_probed(hd_fsm_state_t state);

//  True once a verdict was published (ALIVE*, DEAD*, MAINT).
bool hd_fsm_has_verdict(hd_fsm_state_t state);

//  Consecutive failures the state stands for (for backend.state.failures).
unsigned hd_fsm_failures(hd_fsm_state_t state);

//  A short name ("alive_f1"), for logs and tests.
const char *hd_fsm_state_name(hd_fsm_state_t state);

#endif
