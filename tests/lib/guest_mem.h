/* Unit tests of the engine: guest memory in process memory, one region at gpa. */
#pragma once
#include "elvis_vring.h"

#include <stdlib.h>
#include <string.h>

/* size zeroed bytes, page aligned, mapped as the only region of map (the VMM's address is
 * the process's own); free() it. */
static inline uint8_t *guest_mem_map(struct elvis_vring_mem *map, uint64_t gpa, size_t size)
{
        uint8_t *mem = aligned_alloc(4096, size);

        if (mem)
                memset(mem, 0, size);
        map->nregions = 1;
        map->r[0] = (struct elvis_mem_region){ .gpa = gpa, .size = size, .vmm_addr = (uint64_t)(uintptr_t)mem,
                                               .base = mem };
        return mem;
}

/* A ring of num entries at offsets desc, avail and used of mem (EVENT_IDX and indirect
 * descriptors on), from avail index 0: elvis_vring_init's answer. */
static inline int guest_ring_init(struct elvis_vring *vr, const struct elvis_vring_mem *map, uint8_t *mem, unsigned num,
                                  uint32_t desc, uint32_t avail, uint32_t used, const char **why)
{
        return elvis_vring_init(vr, map, num, (uintptr_t)mem + desc, (uintptr_t)mem + avail, (uintptr_t)mem + used, 0,
                                true, true, why);
}
