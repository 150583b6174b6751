/* The interface every generated model (edgekd compile) provides to the protocol. */
#ifndef EKD_MODEL_H
#define EKD_MODEL_H

#include <stdint.h>

typedef struct {
    const char *name;
    uint32_t arena_bytes;
    int8_t *input;
    uint32_t input_bytes;
    uint32_t n_outputs;
    int8_t *const *outputs;
    const uint32_t *output_bytes;
    uint32_t n_layers;
} ekd_model_info;

extern const ekd_model_info ekd_model;

/* One inference over the model's input; when layer_ticks is not NULL, adds each layer's
 * th_timestamp() delta to layer_ticks[layer]. */
void ekd_model_run(uint64_t *layer_ticks);

#endif
