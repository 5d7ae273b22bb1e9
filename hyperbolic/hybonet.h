/* hybonet.h - HyboNet (Chen et al., "Fully Hyperbolic Neural Networks", ACL 2022) for node
 * classification and link prediction on the Lorentz model, ARCHITECTURE.md section 3.
 *
 *   features -> expmap0 -> [LorentzLinear (weight through sst/) -> LorentzAgg] x L -> decoder
 *
 * The model owns every buffer it needs, sized in hg_hybonet_init(); forward, backward, losses and
 * the optimiser step allocate nothing. Parameter gradients accumulate (+=) until
 * hg_hybonet_zero_grad(); activations and their gradients are overwritten (=).
 *
 * Memory: every array of the model, and every index, label or pair array passed to it, lives in
 * the memory of its kernel context k (host memory on the CPU, device memory with --device cuda):
 * nothing crosses to the host inside a training step but the loss and gradient-norm scalars.
 * Host data goes in through hg_hybonet_init (features, adjacency) and hg_hybonet_tensor_write,
 * and comes out through hg_k_download (emb, logits, pred, pair_score) and hg_hybonet_tensor_read. */
#ifndef HG_HYBONET_H
#define HG_HYBONET_H

#include <stdint.h>

#include "../kernels/kernels.h"
#include "../sst/linear.h"
#include "../src/csr.h"
#include "../src/params.h"
#include "../src/registry.h"

#define HG_HYBONET_MAX_LAYERS 16

typedef struct hg_hybonet_config {
    int64_t n;            /* nodes */
    int64_t nfeat;        /* feature columns (the input point has nfeat + 1 coordinates) */
    int dim;              /* width of every hidden point (16 in the reference) */
    int nlayers;          /* graph-convolution layers (NC: num_layers - 1, LP: num_layers) */
    int nclasses;         /* NC decoder classes; 0 for link prediction */
    float dropout;        /* on the input of every LorentzLinear */
    int act_relu;         /* ReLU on the input point of every layer but the first */
    int bias;             /* LorentzLinear and decoder biases */
    float margin;         /* margin of the NC and LP losses */
    float scale_init;     /* initial exp(s) of LorentzLinear (10) */
    hg_linear_opts linear;/* how every weight is trained (sst/) */
    uint64_t seed;        /* initialisation and dropout */
} hg_hybonet_config;

typedef struct hg_hybonet_layer {
    hg_linear *lin;   /* W (dim x din) */
    int64_t din;
    float *h;         /* unused (NULL): the activation is fused into the linear kernel */
    float *hd;        /* (n x din) act(input) after dropout (l > 0; written when the layer has a
                         ReLU or dropout, otherwise the input itself is used) */
    float *z;         /* (n x dim) pre-head: hd W^T + b */
    float *y;         /* (n x dim) LorentzLinear output */
    float *s;         /* (n x dim) A_hat y */
    float *out;       /* (n x dim) centroid-normalised aggregate: the layer output */
    float *bias, *gbias;   /* (dim) views into the parameter buffers */
    float *scale, *gscale; /* (1) log scale s */
} hg_hybonet_layer;

typedef struct hg_hybonet {
    hg_hybonet_config cfg;
    const hg_kctx *k;
    hg_csr adj;          /* (n x n) D^-1 (A + I), the model's copy */
    hg_csr adj_t;        /* (n x n) its transpose: the aggregation backward gathers rows */
    hg_csr x0;           /* (n x nfeat+1) expmap0 of the features, column 0 = time */
    float *x0_drop;      /* (nnz of x0) dropout applied to x0's values (when dropout > 0) */
    hg_csr x0t;          /* (nfeat+1 x n) x0 transposed: the first layer's weight gradient gathers */
    int64_t *x0t_src;    /* (nnz of x0) index in x0 of each entry of x0t */
    float *x0t_drop;     /* (nnz of x0) x0_drop in x0t's order */
    float *x0_dense;     /* (n x nfeat+1) x0 as a dense matrix, when the first layer takes the
                            dense 16-wide path (dim 16, at most 16 input coordinates, no
                            dropout); NULL otherwise */
    hg_hybonet_layer layer[HG_HYBONET_MAX_LAYERS];
    float *emb;          /* (n x dim) final embeddings (= last layer's out) */
    float *demb;         /* (n x dim) dL/demb, filled by the losses */
    /* every parameter, gradient and moment of the model, in flat buffers, one fused step */
    hg_params *P;
    int group_plain, group_weights, group_vectors; /* hyperparameter groups */
    int id_params, id_classes;                     /* the ordinary tensors in P */
    /* ordinary parameters (views into P): per layer bias (dim) and scale (1); decoder class
       biases (C), then the class points (C x dim, Riemannian, from cls_offset) */
    float *params, *grads;
    int64_t nparams;
    float *cls, *gcls;                 /* class points (C x dim): views */
    float *cls_bias, *gcls_bias;       /* (C) views */
    int64_t cls_offset;                /* offset of the Riemannian block in params */
    /* scratch, all (n x dim) unless noted */
    float *g0, *g1;      /* dL/dS of consecutive layers (backward) */
    float *wt;           /* (nfeat+1 x dim) the sparse first layer's weight, transposed (its rows
                            are gathered); NULL with x0_dense */
    float *dz;           /* (n x dim) head-gradient scratch of the layer backward */
    float *gw;           /* (dim x max din) weight gradient handed to sst/ (W's layout, written
                            by the kernels) */
    float *logits;       /* (n x C) */
    int32_t *pred;       /* (n) hg_hybonet_nc_predict's output buffer, for callers */
    float *dlogits;      /* (n x C) scratch: logit gradients of the loss's rows, compacted */
    int64_t max_pairs;   /* capacity of the pair-score buffers */
    float *pair_score;   /* (max_pairs) scores of the last hg_hybonet_lp_loss: positives, then
                            negatives */
    float *ws;           /* (hg_k_workspace_floats(n)) partial sums of the multi-threaded
                            kernels */
    float *pair_ws;      /* (hg_k_pair_workspace_floats(max_pairs / 2)) hinges of the
                            multi-threaded link-prediction loss */
} hg_hybonet;

/* Build the model: W of every layer from the reference initialisation (uniform +-1/sqrt(dim),
 * column 0 = 0) handed to sst/ in cfg.linear's mode, biases 0, s = log(scale_init), class
 * points at distance 1 from the origin in a random direction. feat (n x nfeat) is mapped by
 * expmap0 once here. max_pairs: the most node pairs a link-prediction loss or score call gets.
 * Errors: HG_EINVAL (sizes), HG_ENOMEM, those of hg_linear_create. */
int hg_hybonet_init(hg_hybonet *m, const hg_kctx *k, const hg_hybonet_config *cfg,
                    const hg_csr *feat, const hg_csr *adj, int64_t max_pairs);
void hg_hybonet_destroy(hg_hybonet *m); /* safe on a zeroed struct */

/* Forward pass: m->emb (=). train != 0 applies dropout with masks from dropout_seed. */
void hg_hybonet_forward(hg_hybonet *m, int train, uint64_t dropout_seed);
/* Backward from m->demb through every layer (same train/dropout_seed as the forward);
 * parameter gradients (+=). */
void hg_hybonet_backward(hg_hybonet *m, int train, uint64_t dropout_seed);
/* The seed of layer l's dropout mask in a forward/backward called with dropout_seed: element e
 * of that layer's input is scaled by hg_k_dropout_scale(e, cfg.dropout, this seed), where e
 * counts row-major over the n x din input for l > 0, and over the stored entries of the sparse
 * input point m->x0 (its value array, in CSR order) for l = 0. */
uint64_t hg_hybonet_dropout_seed(uint64_t dropout_seed, int l);

/* Node classification: logits l_c(x) = 2 + 2<x, p_c>_L + b_c for every node (m->logits), margin
 * loss mean_{i in idx, c} relu(margin - l_{y_i} + l_c). want_grad: m->demb (=) and the decoder's
 * parameter gradients (+=). Returns the loss. */
double hg_hybonet_nc_loss(hg_hybonet *m, const int64_t *idx, int64_t nidx, const int32_t *labels,
                          int want_grad);
/* Arg-max class of each node in idx (after hg_hybonet_nc_loss or hg_hybonet_nc_logits) into pred
 * (nidx, k's memory; m->pred has room for n). */
void hg_hybonet_nc_logits(hg_hybonet *m);
void hg_hybonet_nc_predict(const hg_hybonet *m, const int64_t *idx, int64_t nidx, int32_t *pred);

/* Link prediction scores s(u, v) = -d2 = 2 + 2<h_u, h_v>_L of `count` pairs (u, v) into out. */
void hg_hybonet_lp_scores(const hg_hybonet *m, const int32_t *pairs, int64_t count, float *out);
/* Loss mean(relu(margin - s_pos + [s_pos, s_neg])) over `count` positive pairs and as many
 * negatives. want_grad: m->demb (=). count <= max_pairs / 2. Returns the loss. */
double hg_hybonet_lp_loss(hg_hybonet *m, const int32_t *pos, const int32_t *neg, int64_t count,
                          int want_grad);

void hg_hybonet_zero_grad(hg_hybonet *m);
/* Global gradient norm over every trainable parameter (weights through sst/, biases, scales,
 * class points). */
double hg_hybonet_grad_norm(const hg_hybonet *m);
void hg_hybonet_scale_grad(hg_hybonet *m, float a);
/* One optimiser step: Adam for biases and scales, Riemannian Adam for the class points (with
 * re-projection every `stabilize` steps, 0 = never), sst/ for the weights. */
int hg_hybonet_step(hg_hybonet *m, float lr, int stabilize);

/* Trainable parameters and optimiser-state floats, everything included. */
int64_t hg_hybonet_num_trainable(const hg_hybonet *m);
int64_t hg_hybonet_state_floats(const hg_hybonet *m);

/* Named persistent tensors (weights through sst/, then the ordinary parameters) for checkpoints:
 * name and float count of tensor i; read copies it to host memory, write from host memory. */
int hg_hybonet_num_tensors(const hg_hybonet *m);
void hg_hybonet_tensor_info(const hg_hybonet *m, int i, char *name, size_t name_len,
                            int64_t *count);
void hg_hybonet_tensor_read(const hg_hybonet *m, int i, float *host_dst);
void hg_hybonet_tensor_write(hg_hybonet *m, int i, const float *host_src);
/* Register every persistent tensor of the model in reg (for checkpoints): the tensors above, the
 * ordinary parameters' Adam moments and their step counter (the optimiser steps taken).
 * Errors: those of hg_registry_add. */
int hg_hybonet_register(hg_hybonet *m, hg_registry *reg);
/* After writing tensors: rebuild the weights. */
void hg_hybonet_rematerialise(hg_hybonet *m);

#endif
