/* Entry point (skeleton: replaced as the proxy lands). */
#include <stdio.h>

#include "sidestep/error.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("sidestep %s (%s)\n", SST_VERSION, sst_strerror(0));
    return 0;
}
