/* Hexadecimal digits, shared by key files (crypto) and HTML character references (mime). */
#ifndef ARCA_LIB_HEX_H
#define ARCA_LIB_HEX_H

/* Value of one hex digit (0-9, a-f, A-F), or -1. */
static inline int arca_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
