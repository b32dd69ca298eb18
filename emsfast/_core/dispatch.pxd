from libc.stdint cimport int64_t, uint64_t


cdef class ServerMessage:
    cdef public uint64_t id
    cdef bytes _blob            # None for a recovered message: the body is in the store
    cdef object _source         # its store (load_blob), with _holder its owner key
    cdef str _holder
    cdef public int delivery_mode
    cdef public int priority
    cdef public int64_t timestamp
    cdef public int64_t expiration
    cdef public bint persistent
    cdef public Py_ssize_t size
    cdef public uint64_t origin
    cdef object _meta


cdef class Delivery:
    cdef public object consumer
    cdef public object holder
    cdef public ServerMessage msg
    cdef public int count
