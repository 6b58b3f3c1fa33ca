/* elvis-manager entry point: the product's data-plane registry. */
#include "manager.h"

#include <stddef.h>

static const struct elvis_dataplane_entry dataplanes[] = {
        { NULL, NULL },
};

int main(int argc, char **argv)
{
        return elvis_manager_main(argc, argv, dataplanes);
}
