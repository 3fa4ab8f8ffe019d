#include <stdio.h>

int main(void) {
  printf("Hello from a Cairn build!\n");
  return 0;
}
