/*  rt_decide - answers decide: match the Host, ask the balancer for the pick,
    relay its lease with the route's policy added (docs/request-path.md).

      gateway --decide--> router --pick (deadline 150 ms)--> balancer
      gateway <--lease + policy-- router <--lease-- balancer
      no route: lease{status:"no_route"}; balancer absent or silent:
      error{code:"unavailable"}

    Each ask in flight holds a reference on its route, so the policy relayed
    is the one of the configuration version the pick was made from, even if
    the route changes meanwhile.
*/
#ifndef RT_DECIDE_H
#define RT_DECIDE_H

#include "proto_bus.h"
#include "rt_control.h"

#define RT_DECIDE_PICK_TIMEOUT_MS 150 // how long the balancer has to answer a pick

typedef struct rt_decide rt_decide_t;

//  Create the decide handler and register it on bus for decide. bus and
//  control are borrowed and must outlive it.
rt_decide_t *rt_decide_new(proto_bus_t *bus, rt_control_t *control);

//  Free every ask still in flight (the bus must not call back any more:
//  destroy the bus first, or never run the loop again). Sets *self_p to
//  NULL. Safe to call twice.
void rt_decide_destroy(rt_decide_t **self_p);

#endif
