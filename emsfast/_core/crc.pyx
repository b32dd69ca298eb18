"""CRC32C (Castagnoli) over any contiguous buffer; the checksum on store records."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint32_t

from emsfast._core.crc cimport ems_crc32c

# Below this a GIL round trip costs more than the checksum itself.
cdef Py_ssize_t _NOGIL_MIN = 64 * 1024


def crc32c(data, uint32_t crc=0):
    """Return the CRC32C of ``data`` continued from ``crc`` (0 to start)."""
    cdef Py_buffer view
    cdef uint32_t out
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        # The export pins the buffer (a bytearray cannot resize), so it is safe
        # to read it while other threads run.
        if view.len >= _NOGIL_MIN:
            with nogil:
                out = ems_crc32c(crc, view.buf, <size_t>view.len)
        else:
            out = ems_crc32c(crc, view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return out
