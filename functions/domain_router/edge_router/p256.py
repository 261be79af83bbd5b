"""ECDSA verification on NIST P-256 (the curve behind ES256), pure Python.

The edge bundle is standard-library only, so the curve arithmetic lives here:
Jacobian coordinates (no modular inversion per step) and Shamir's trick to
compute u1*G + u2*Q in one pass. Only verification is implemented; it handles
public data only, so it does not need to be constant-time.
"""

# Curve parameters from SEC 2 / FIPS 186-4 (secp256r1).
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

_INFINITY = (1, 1, 0)  # Jacobian point with Z = 0


def is_on_curve(x: int, y: int) -> bool:
    """True when (x, y) is a finite point of P-256 (rejects invalid-curve keys)."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x + A * x + B)) % P == 0


class VerifyingKey:
    """A P-256 public key with G + Q precomputed for Shamir's trick."""

    __slots__ = ("_g_plus_q", "point")

    def __init__(self, x: int, y: int):
        if not is_on_curve(x, y):
            raise ValueError("the point is not on the P-256 curve")
        self.point = (x, y)
        self._g_plus_q = _affine_add(G, self.point)

    def verify_digest(self, digest: bytes, r: int, s: int) -> bool:
        """Check an ECDSA signature (r, s) over a SHA-256 digest."""
        if not (1 <= r < N and 1 <= s < N) or len(digest) != 32:
            return False
        e = int.from_bytes(digest, "big")  # a 256-bit hash needs no truncation for P-256
        w = pow(s, -1, N)
        x_jacobian, _, z = _double_scalar_multiply(e * w % N, r * w % N, self.point, self._g_plus_q)
        if z == 0:
            return False
        x = x_jacobian * pow(z * z % P, -1, P) % P
        return x % N == r


def _double_scalar_multiply(u1: int, u2: int, q: tuple, g_plus_q: tuple | None) -> tuple:
    """u1*G + u2*Q in Jacobian coordinates, one doubling per bit."""
    table = {0: None, 1: G, 2: q, 3: g_plus_q}
    point = _INFINITY
    for bit in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        point = _double(point)
        index = ((u1 >> bit) & 1) | (((u2 >> bit) & 1) << 1)
        addend = table[index]
        if addend is not None:
            point = _add_affine(point, addend)
    return point


def _double(point: tuple) -> tuple:
    x, y, z = point
    if z == 0 or y == 0:
        return _INFINITY
    delta = z * z % P
    gamma = y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P  # a = -3 shortcut
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return (x3, y3, z3)


def _add_affine(point: tuple, affine: tuple) -> tuple:
    """Jacobian + affine ("mixed") addition."""
    x1, y1, z1 = point
    x2, y2 = affine
    if z1 == 0:
        return (x2, y2, 1)
    z1z1 = z1 * z1 % P
    u2 = x2 * z1z1 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - x1) % P
    r = 2 * (s2 - y1) % P
    if h == 0:
        return _double(point) if r == 0 else _INFINITY
    hh = h * h % P
    i = 4 * hh % P
    j = h * i % P
    v = x1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * y1 * j) % P
    z3 = ((z1 + h) * (z1 + h) - z1z1 - hh) % P
    return (x3, y3, z3)


def _affine_add(p1: tuple, p2: tuple) -> tuple | None:
    """Affine addition for the one-off G + Q precomputation; None is infinity."""
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return (x3, (slope * (x1 - x3) - y1) % P)
