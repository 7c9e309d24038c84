"""Test helper: a minimal Python 3 port of ryankiros/multimodal-neural-language-models.

`lm/mlbl.py` (MLBL), `lm/mlblf.py` (MLBLF) and `utils/lm_tools.py` (`beam_search`,
`perplexity`), their logic unchanged: loops, the hand-written `backward` and `update_params`,
float64 NumPy, Python 2's integer division spelled `_div`. Only what the tests compare is
kept (no training loop, no BLEU). `Im != None` is `Im is not None`.
"""

import copy

import numpy as np
from numpy.random import RandomState

from uvs.mnlm import svd_tools


def _div(a, b):
    """Python 2's `/`."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return a / b


class RefMLBL:
    def __init__(self, name='lbl', loc='models/mlbl.pkl', seed=1234, dropout=0.0, k=5,
                 V=10364, K=50, D=10, h=3, context=5, batchsize=20, maxepoch=10, eta_t=0.2,
                 gamma_r=0.0, gamma_c=0.0, f=0.995, p_i=0.5, p_f=0.5, T=20, verbose=1):
        self.name = name
        self.loc = loc
        self.dropout = dropout
        self.seed = seed
        self.k = k
        self.V = V
        self.K = K
        self.D = D
        self.h = h
        self.context = context
        self.batchsize = batchsize
        self.maxepoch = maxepoch
        self.eta_t = eta_t
        self.gamma_r = gamma_r
        self.gamma_c = gamma_c
        self.f = f
        self.p_i = p_i
        self.p_f = p_f
        self.T = T
        self.verbose = verbose
        self.p_t = (1 - _div(1, T)) * p_i + _div(1, T) * p_f

    def init_params(self, embed_map, count_dict):
        prng = RandomState(self.seed)
        if embed_map is not None:
            R = np.zeros((self.K, self.V))
            for i in range(self.V):
                word = count_dict[i]
                if word in embed_map:
                    R[:, i] = embed_map[word]
                else:
                    R[:, i] = embed_map['*UNKNOWN*']
        else:
            r = np.sqrt(6) / np.sqrt(self.K + self.V + 1)
            R = prng.rand(self.K, self.V) * 2 * r - r
        bw = np.zeros((1, self.V))
        C = 0.01 * prng.randn(self.context, self.K, self.K)
        M = 0.01 * prng.randn(self.h, self.K)
        r = np.sqrt(6) / np.sqrt(self.D + self.h + 1)
        J = prng.rand(self.D, self.h) * 2 * r - r
        bj = np.zeros((1, self.h))
        self.R, self.C, self.bw, self.M, self.J, self.bj = R, C, bw, M, J, bj
        self.deltaR = np.zeros(np.shape(R))
        self.deltaC = np.zeros(np.shape(C))
        self.deltaB = np.zeros(np.shape(bw))
        self.deltaM = np.zeros(np.shape(M))
        self.deltaJ = np.zeros(np.shape(J))
        self.deltaBj = np.zeros(np.shape(bj))

    def forward(self, X, Im, test=True):
        batchsize = X.shape[0]
        IF = np.dot(Im, self.J) + self.bj
        IF = IF * (IF > 0)
        if self.dropout > 0 and not test:
            dropmask = np.random.rand(batchsize, self.h) > self.dropout
            IF = IF * dropmask
        tmp = self.R[:, X.flatten()].flatten(order='F').reshape((batchsize, self.K * self.context))
        words = np.zeros((batchsize, self.K, self.context))
        for i in range(batchsize):
            words[i] = tmp[i].reshape((self.K, self.context), order='F')
        acts = np.zeros((batchsize, self.K))
        for i in range(self.context):
            acts += np.dot(words[:, :, i], self.C[i])
        if test:
            acts += np.dot(IF, self.M * (1 - self.dropout))
        else:
            acts += np.dot(IF, self.M)
        preds = np.dot(acts, self.R) + self.bw
        preds = np.exp(preds - preds.max(1).reshape(batchsize, 1))
        preds /= preds.sum(1).reshape(batchsize, 1)
        return (words, acts, IF, preds)

    def objective(self, Y, preds):
        batchsize = Y.shape[0]
        return -np.sum(Y.multiply(np.log(preds + 1e-20))) / batchsize

    def backward(self, Y, preds, IF, acts, words, X, Im):
        batchsize = preds.shape[0]
        Y = np.array(Y.todense())
        Ix = (preds - Y) / batchsize
        dR = np.dot(acts.T, Ix)
        db = np.sum(Ix, 0)
        Ix = np.dot(Ix, self.R.T)
        dC = np.zeros(np.shape(self.C))
        for i in range(self.context):
            dC[i] = np.dot(words[:, :, i].T, Ix)
            delta = np.dot(Ix, self.C[i].T)
            for j in range(X.shape[0]):
                dR[:, X[j, i]] += delta.T[:, j]
        dM = np.dot(IF.T, Ix)
        Ix = np.multiply(np.dot(Ix, self.M.T), (IF > 0))
        dJ = np.dot(Im.T, Ix)
        dBj = np.sum(Ix, 0)
        dR += self.gamma_r * self.R
        dC += self.gamma_c * self.C
        dM += self.gamma_c * self.M
        dJ += self.gamma_c * self.J
        self.dR, self.dM, self.db, self.dC, self.dJ, self.dBj = dR, dM, db, dC, dJ, dBj

    def update_params(self, X):
        batchsize = X.shape[0]
        c = (1 - self.p_t) * (self.eta_t / batchsize)
        self.deltaC = self.p_t * self.deltaC - c * self.dC
        self.deltaR = self.p_t * self.deltaR - c * self.dR
        self.deltaB = self.p_t * self.deltaB - c * self.db
        self.deltaM = self.p_t * self.deltaM - c * self.dM
        self.deltaJ = self.p_t * self.deltaJ - c * self.dJ
        self.deltaBj = self.p_t * self.deltaBj - c * self.dBj
        self.C += self.deltaC
        self.R += self.deltaR
        self.bw += self.deltaB
        self.M += self.deltaM
        self.J += self.deltaJ
        self.bj += self.deltaBj

    def update_hyperparams(self):
        self.eta_t *= self.f
        if self.step < self.T:
            self.p_t = (1 - _div(self.step + 1, self.T)) * self.p_i + \
                _div(self.step + 1, self.T) * self.p_f
        else:
            self.p_t = self.p_f

    def step_once(self, X, Im, Y):
        (words, acts, IF, preds) = self.forward(X, Im, test=False)
        self.backward(Y, preds, IF, acts, words, X, Im)
        self.update_params(X)


class RefMLBLF(RefMLBL):
    def __init__(self, factors=10, **kw):
        super().__init__(**kw)
        self.factors = factors

    def init_params(self, embed_map, count_dict):
        prng = RandomState(self.seed)
        if embed_map is not None:
            R = np.zeros((self.K, self.V))
            for i in range(self.V):
                word = count_dict[i]
                R[:, i] = embed_map[word] if word in embed_map else embed_map['*UNKNOWN*']
        else:
            r = np.sqrt(6) / np.sqrt(self.K + self.V + 1)
            R = prng.rand(self.K, self.V) * 2 * r - r
        bw = np.zeros((1, self.V))
        C = 0.01 * prng.randn(self.context, self.K, self.K)
        M = 0.01 * prng.randn(self.h, self.K)
        r = np.sqrt(6) / np.sqrt(self.D + self.h + 1)
        J = prng.rand(self.D, self.h) * 2 * r - r
        bj = np.zeros((1, self.h))
        Wfx, Whf = svd_tools.svd(R, n_components=self.factors, transpose='false')
        Wfv = 0.01 * prng.randn(self.h, self.factors)
        self.C, self.bw, self.M, self.J, self.bj = C, bw, M, J, bj
        self.Wfx, self.Whf, self.Wfv = Wfx, Whf, Wfv
        for n in ('C', 'M', 'J', 'Wfx', 'Whf', 'Wfv'):
            setattr(self, 'delta' + n, np.zeros(np.shape(getattr(self, n))))
        self.deltaB = np.zeros(np.shape(bw))
        self.deltaBj = np.zeros(np.shape(bj))

    def forward(self, X, Im, test=True):
        batchsize = X.shape[0]
        IF = np.dot(Im, self.J) + self.bj
        IF = np.multiply(IF, (IF > 0))
        if self.dropout > 0 and not test:
            dropmask = np.random.rand(batchsize, self.h) > self.dropout
            IF = IF * dropmask
        R = np.dot(self.Wfx, self.Whf)
        tmp = R[:, X.flatten()].flatten(order='F').reshape((batchsize, self.K * self.context))
        words = np.zeros((batchsize, self.K, self.context))
        for i in range(batchsize):
            words[i] = tmp[i].reshape((self.K, self.context), order='F')
        acts = np.zeros((batchsize, self.K))
        for i in range(self.context):
            acts += np.dot(words[:, :, i], self.C[i])
        if test:
            acts += np.dot(IF, self.M * (1 - self.dropout))
        else:
            acts += np.dot(IF, self.M)
        if test:
            F = np.multiply(np.dot(acts, self.Wfx), np.dot(IF, self.Wfv * (1 - self.dropout)))
        else:
            F = np.multiply(np.dot(acts, self.Wfx), np.dot(IF, self.Wfv))
        preds = np.dot(F, self.Whf) + self.bw
        preds = np.exp(preds - preds.max(1).reshape(batchsize, 1))
        preds /= preds.sum(1).reshape(batchsize, 1)
        return (words, acts, IF, F, preds)

    def backward(self, Y, preds, F, IF, acts, words, X, Im):
        batchsize = preds.shape[0]
        Y = np.array(Y.todense())
        Ix = (preds - Y) / batchsize
        dWhf = np.dot(F.T, Ix)
        db = np.sum(Ix, 0)
        Ix = np.dot(Ix, self.Whf.T)
        dWfv = np.dot(IF.T, np.multiply(Ix, np.dot(acts, self.Wfx)))
        dWfx = np.dot(acts.T, np.multiply(Ix, np.dot(IF, self.Wfv)))
        Ix_word = np.dot(np.multiply(Ix, np.dot(IF, self.Wfv)), self.Wfx.T)
        dC = np.zeros(np.shape(self.C))
        dR = np.zeros((self.K, self.V))
        for i in range(self.context):
            dC[i] = np.dot(words[:, :, i].T, Ix_word)
            delta = np.dot(Ix_word, self.C[i].T)
            for j in range(X.shape[0]):
                dR[:, X[j, i]] += delta.T[:, j]
        dWfx += np.dot(dR, self.Whf.T)
        dWhf += np.dot(self.Wfx.T, dR)
        dM = np.dot(IF.T, Ix_word)
        Ix = np.multiply(np.dot(np.multiply(Ix, np.dot(acts, self.Wfx)), self.Wfv.T), (IF > 0)) + \
            np.multiply(np.dot(Ix_word, self.M.T), (IF > 0))
        dJ = np.dot(Im.T, Ix)
        dBj = np.sum(Ix, 0)
        dWhf += self.gamma_r * self.Whf
        dWfv += self.gamma_r * self.Wfv
        dWfx += self.gamma_r * self.Wfx
        dC += self.gamma_c * self.C
        dM += self.gamma_c * self.M
        dJ += self.gamma_c * self.J
        self.db, self.dC, self.dM, self.dJ, self.dBj = db, dC, dM, dJ, dBj
        self.dWhf, self.dWfv, self.dWfx = dWhf, dWfv, dWfx

    def update_params(self, X):
        batchsize = X.shape[0]
        c = (1 - self.p_t) * (self.eta_t / batchsize)
        self.deltaC = self.p_t * self.deltaC - c * self.dC
        self.deltaB = self.p_t * self.deltaB - c * self.db
        self.deltaM = self.p_t * self.deltaM - c * self.dM
        self.deltaJ = self.p_t * self.deltaJ - c * self.dJ
        self.deltaBj = self.p_t * self.deltaBj - c * self.dBj
        self.deltaWhf = self.p_t * self.deltaWhf - c * self.dWhf
        self.deltaWfv = self.p_t * self.deltaWfv - c * self.dWfv
        self.deltaWfx = self.p_t * self.deltaWfx - c * self.dWfx
        self.C = self.C + self.deltaC
        self.bw = self.bw + self.deltaB
        self.M = self.M + self.deltaM
        self.J = self.J + self.deltaJ
        self.bj = self.bj + self.deltaBj
        self.Wfv = self.Wfv + self.deltaWfv
        self.Wfx = self.Wfx + self.deltaWfx
        self.Whf = self.Whf + self.deltaWhf

    def step_once(self, X, Im, Y):
        (words, acts, IF, F, preds) = self.forward(X, Im, test=False)
        self.backward(Y, preds, F, IF, acts, words, X, Im)
        self.update_params(X)


def ref_model_inputs(ngrams, word_dict, context=5):
    rows = []
    for ng in ngrams:
        for g in ng:
            rows.append([word_dict[w] if w in word_dict else word_dict['unk'] for w in g])
    return np.array(rows, dtype=int).reshape(-1, context + 1)


def ref_perplexity(net, ngrams, word_dict, Im=None, context=5):
    """`lm_tools.perplexity` with `compute_ll` inlined."""
    ll = 0
    N = 0
    for i, ng in enumerate(ngrams):
        instances = ref_model_inputs([ng], word_dict, context=context)
        preds = net.forward(instances[:, :-1], np.tile(Im[i], (len(ng), 1)))[-1]
        for j in range(preds.shape[0]):
            ll += np.log2(preds[j, instances[j, -1]] + 1e-20)
        N += len(instances)
    return pow(2, (-1.0 / N) * ll)


def ref_beam_search(net, word_dict, index_dict, num, Im, initial=None, k=2):
    """`lm_tools.beam_search` without the language-model fusion and reranking."""
    if initial is None:
        initial = ['<start>'] * net.context
    inputs = np.array([word_dict[w] for w in initial]).reshape(1, net.context)
    beam_tokens, beam_inputs, beam_scores = [], [], []
    for _ in range(k):
        beam_scores.append([0])
        beam_tokens.append(['<start>'] * net.context)
        beam_inputs.append(np.array([word_dict[w] for w in initial]).reshape(1, net.context))
    done = False
    count = 1
    while not done:
        if count == 1:
            preds = net.forward(inputs[:, inputs.shape[1] - net.context:], [Im])[-1].flatten()
            preds = np.log(preds + 1e-20)
            argpreds = np.argsort(preds)[::-1]
            words = [index_dict[w] for w in argpreds][:k]
            scores = preds[argpreds][:k]
            for i in range(k):
                beam_tokens[i].append(words[i])
                beam_inputs[i] = np.c_[beam_inputs[i], argpreds[i]]
                beam_scores[i].append(scores[i])
                beam_scores[i] = beam_scores[i][1:]
            count += 1
        if count > 1:
            candidate_tokens, candidate_scores, candidate_inputs, candidate_norm = [], [], [], []
            for i in range(k):
                preds = net.forward(beam_inputs[i][:, beam_inputs[i].shape[1] - net.context:],
                                    [Im])[-1].flatten()
                preds = np.log(preds + 1e-20)
                argpreds = np.argsort(preds)[::-1]
                words = [index_dict[w] for w in argpreds][:k]
                scores = preds[argpreds][:k]
                for j in range(k):
                    tmp = copy.deepcopy(beam_tokens[i])
                    last_word = tmp[-1]
                    if last_word != '<end>':
                        tmp.append(words[j])
                        candidate_tokens.append(tmp)
                        candidate_norm.append(len(tmp) - net.context)
                    elif j == 0:
                        candidate_tokens.append(tmp)
                        candidate_norm.append(len(tmp) - net.context)
                    tmp = copy.deepcopy(beam_scores[i])
                    if last_word != '<end>':
                        tmp.append(scores[j])
                        candidate_scores.append(tmp)
                    elif j == 0:
                        candidate_scores.append(tmp)
                    tmp = copy.deepcopy(beam_inputs[i])
                    if last_word != '<end>':
                        tmp = np.c_[tmp, argpreds[j]]
                        candidate_inputs.append(tmp)
                    elif j == 0:
                        candidate_inputs.append(tmp)
            scores = [sum(w) for w in candidate_scores]
            for i in range(len(scores)):
                scores[i] /= candidate_norm[i]
            argscores = np.argsort(scores)[::-1][:k]
            for i in range(k):
                beam_tokens[i] = candidate_tokens[argscores[i]]
                beam_scores[i] = candidate_scores[argscores[i]]
                beam_inputs[i] = candidate_inputs[argscores[i]]
            numends = 0
            for i in range(k):
                if beam_tokens[i][-1] == '<end>':
                    numends += 1
            if numends == k:
                done = True
            count += 1
            if count == num:
                done = True
    return [b[net.context:-1] for b in beam_tokens[:k]]
