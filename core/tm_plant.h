/*
 * tm_plant.h - bugs planted on purpose, for the simulator's bite tests
 * (docs/sim.md "Proof that it bites").
 *
 * Only the tm-sim-plant test binary compiles the core with TM_PLANTS, and
 * there `tm-sim-plant --plant NAME` sets tm_plant. Everywhere else -
 * tillmeshd, tm-sim, the core's archives that check-purity.sh checks -
 * TM_PLANTED(name) is the constant 0 and the planted branch compiles away.
 */
#ifndef TM_PLANT_H
#define TM_PLANT_H

#ifdef TM_PLANTS
#include <string.h>
extern const char *tm_plant; /* sim/main.c; the test binary's only global */
#define TM_PLANTED(name) (tm_plant && strcmp(tm_plant, (name)) == 0)
#else
#define TM_PLANTED(name) 0
#endif

#endif
