#include "runtime/cli.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

int cli_main(int argc, char **argv)
{
    log_init("bottle");
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("bottle %s\n", BOTTLE_VERSION);
        return 0;
    }
    fprintf(stderr, "bottle: no command given (see 'bottle --help')\n");
    return 2;
}
