package storetest

import (
	"reflect"
	"time"
)

// norm returns a deep copy of v with every time.Time in UTC and every empty
// map or slice nil, so values that round-tripped through a backend compare
// equal to what was stored.
func norm[T any](v T) T {
	out := normValue(reflect.ValueOf(&v).Elem())
	return out.Interface().(T)
}

var timeType = reflect.TypeFor[time.Time]()

// normValue returns a normalised deep copy of v.
func normValue(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch {
	case v.Type() == timeType:
		t := v.Interface().(time.Time)
		if !t.IsZero() {
			out.Set(reflect.ValueOf(t.UTC()))
		}
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(normValue(v.Field(i)))
			}
		}
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return out
		}
		out.Set(reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
		for i := range v.Len() {
			out.Index(i).Set(normValue(v.Index(i)))
		}
	case v.Kind() == reflect.Map:
		if v.Len() == 0 {
			return out
		}
		out.Set(reflect.MakeMapWithSize(v.Type(), v.Len()))
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), normValue(it.Value()))
		}
	default:
		out.Set(v)
	}
	return out
}
