# The C library, for C programs that share channels with Node (no Node needed):
#
#   make                  build-c/libshmchan.a (headers: native/include/shmchan.h)
#   make examples         the library, then the programs of examples/c
#   make clean
#
# BUILD=DIR puts the objects and the library elsewhere; CFLAGS adds flags.
CC ?= cc
AR ?= ar
BUILD ?= build-c
SHMCHAN_CFLAGS := -std=c11 -Wall -Wextra -O2

SOURCES := $(wildcard native/src/*.c)
OBJECTS := $(SOURCES:native/src/%.c=$(BUILD)/%.o)

.PHONY: all lib examples clean
all: lib
lib: $(BUILD)/libshmchan.a

$(BUILD)/libshmchan.a: $(OBJECTS)
	$(AR) rcs $@ $^

$(BUILD)/%.o: native/src/%.c $(wildcard native/src/*.h) native/include/shmchan.h
	@mkdir -p $(BUILD)
	$(CC) $(SHMCHAN_CFLAGS) $(CFLAGS) -c $< -o $@

examples: lib
	$(MAKE) -C examples/c BUILD=$(abspath $(BUILD))

clean:
	rm -rf $(BUILD)
	$(MAKE) -C examples/c clean
