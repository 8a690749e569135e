#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("bottle-proxy %s\n", BOTTLE_VERSION);
        return 0;
    }
    fprintf(stderr, "bottle-proxy: usage: bottle-proxy --config FILE\n");
    return 2;
}
